import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import type { OutgoingRecord } from '../../src/core/envelope.ts';
import { faultyDatabase } from '../helpers/faulty-database.ts';
import { freshSchema } from '../helpers/pg.ts';

describe('table log offsets on Postgres', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let admin: TableLogAdmin;
  before(async () => {
    env = await freshSchema('zltlo');
    admin = new TableLogAdmin(env.db, { schema: env.schema });
  });
  after(async () => {
    await env.cleanup();
  });

  const rec = (topic: string, key: string, value: string): OutgoingRecord => ({ topic, key, value: Buffer.from(value), headers: {} });

  test('offsets are dense and become visible strictly in order under concurrent publishers', async () => {
    await admin.createTopic('dense', 2);
    const publisher = new TableLogPublisher(env.db, { schema: env.schema });
    let publishing = true;
    let reads = 0;
    // A reader that moves past offset n only after seeing it must never see n+1 before n.
    const reader = (async () => {
      while (publishing) {
        const { rows } = await env.pool.query<{ partition: number; offsets: string[] }>(
          `select partition, array_agg(log_offset::text order by log_offset) as offsets from "${env.schema}".log_record
           where topic = 'dense' group by partition`,
        );
        for (const row of rows) {
          row.offsets.forEach((o, i) => {
            assert.equal(o, String(i), `partition ${row.partition} showed a gap at ${i}`);
          });
        }
        reads++;
      }
    })();
    const outcomes = await Promise.all(
      Array.from({ length: 6 }, (_, w) =>
        (async () => {
          const mine = [];
          for (let b = 0; b < 25; b++) {
            mine.push(
              ...(await publisher.publish(Array.from({ length: 8 }, (_, i) => rec('dense', `k${(w * 8 + i) % 13}`, `${w}:${b}:${i}`)))),
            );
          }
          return mine;
        })(),
      ),
    ).finally(() => {
      publishing = false;
    });
    await reader;
    assert.ok(reads > 1, 'the reader ran during the publishing');
    const flat = outcomes.flat();
    assert.equal(flat.length, 6 * 25 * 8);
    const seen = new Set<string>();
    for (const o of flat) {
      assert.ok(o.ok && o.partition !== undefined && o.offset !== undefined);
      const id = `${o.partition}/${o.offset}`;
      assert.ok(!seen.has(id), `offset ${id} handed out twice`);
      seen.add(id);
    }
    const ends = await admin.endOffsets('dense');
    assert.equal(
      ends.reduce((n, e) => n + Number(e.high), 0),
      flat.length,
    );
    for (const e of ends) assert.equal(e.low, 0n);
  });

  test('a publish that rolls back leaves no gap, and a missing topic fails only its own records', async () => {
    await admin.createTopic('rollback', 1);
    const faulty = faultyDatabase(env.db);
    const publisher = new TableLogPublisher(faulty.db, { schema: env.schema });
    assert.deepEqual(
      (await publisher.publish([rec('rollback', 'a', '0'), rec('rollback', 'a', '1')])).map((o) => o.ok && o.offset),
      [0n, 1n],
    );
    faulty.state.failCommits = true;
    const failed = await publisher.publish([rec('rollback', 'a', 'lost-2'), rec('rollback', 'b', 'lost-3')]);
    for (const o of failed) {
      assert.ok(!o.ok);
      assert.equal(o.error.code, 'ZL_SEND_FAILED');
      assert.equal(o.error.retryable, true);
      assert.equal(o.attempted, true);
    }
    faulty.state.failCommits = false;
    faulty.state.cut = true;
    const unreachable = await publisher.publish([rec('rollback', 'a', 'x')]);
    assert.ok(!unreachable[0]!.ok && unreachable[0]!.error.retryable, 'an unreachable database is a retryable per-record failure');
    faulty.state.cut = false;
    const mixed = await publisher.publish([rec('nope', 'a', 'x'), rec('rollback', 'a', '2'), rec('rollback', 'b', '3')]);
    assert.ok(!mixed[0]!.ok && mixed[0]!.error.code === 'ZL_TOPIC_UNAVAILABLE');
    assert.deepEqual(
      mixed.slice(1).map((o) => o.ok && o.offset),
      [2n, 3n],
      'the rolled-back offsets were reused',
    );
    const { rows } = await env.pool.query(`select value from "${env.schema}".log_record where topic = 'rollback' order by log_offset`);
    assert.deepEqual(
      rows.map((r) => r.value.toString()),
      ['0', '1', '2', '3'],
    );
  });

  test('a batch too big for one statement is written in several, still as one transaction', async () => {
    await admin.createTopic('big', 1);
    const faulty = faultyDatabase(env.db);
    const publisher = new TableLogPublisher(faulty.db, { schema: env.schema });
    const values = Array.from({ length: 20 }, (_, i) => Buffer.alloc(600 * 1024, i));
    const records = values.map((value) => ({ topic: 'big', key: 'k', value, headers: {} }));
    faulty.state.failCommits = true;
    assert.ok((await publisher.publish(records)).every((o) => !o.ok));
    assert.deepEqual(await admin.endOffsets('big'), [{ partition: 0, low: 0n, high: 0n }], 'no chunk of the failed batch stayed');
    faulty.state.failCommits = false;
    const outcomes = await publisher.publish(records);
    assert.deepEqual(
      outcomes.map((o) => o.ok && o.offset),
      values.map((_, i) => BigInt(i)),
    );
    const { rows } = await env.pool.query<{ n: number; first: number }>(
      `select count(*)::int as n, min(get_byte(value, 0)) as first from "${env.schema}".log_record where topic = 'big' and length(value) = 600 * 1024`,
    );
    assert.deepEqual(rows[0], { n: 20, first: 0 });
  });

  test('records land on the partition of their key and outcomes report it', async () => {
    await admin.createTopic('placed', 5);
    const publisher = new TableLogPublisher(env.db, { schema: env.schema });
    const keys = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const outcomes = await publisher.publish(keys.map((k) => rec('placed', k, k)));
    const { rows } = await env.pool.query<{ msg_key: string; partition: number; log_offset: string }>(
      `select msg_key, partition, log_offset::text from "${env.schema}".log_record where topic = 'placed'`,
    );
    keys.forEach((k, i) => {
      const o = outcomes[i]!;
      assert.ok(o.ok);
      assert.equal(o.partition, partitionFor(k, 5));
      const row = rows.find((r) => r.msg_key === k)!;
      assert.equal(row.partition, o.partition);
      assert.equal(BigInt(row.log_offset), o.offset);
    });
  });
});
