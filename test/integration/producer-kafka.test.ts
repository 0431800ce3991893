import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { compatibilityPartitioner } from '@platformatic/kafka';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { StateColumnSource } from '../../src/adapters/postgres/state-column-source.ts';

import { uuidv7 } from '../../src/core/ids.ts';
import { Relay } from '../../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, readAll, readTopic, uniqueTopic } from '../helpers/kafka.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

const run = promisify(execFile);
const BIN = new URL('../../bin/zeroloss.js', import.meta.url).pathname;
const fast = { backoff: { baseMs: 50, maxMs: 500, jitter: 0 }, idleIntervalMs: 500, backlogIntervalMs: 100, minIntervalMs: 10 };

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('producer over a real Kafka', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zlk');
    publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 5_000 });
  });
  after(async () => {
    await publisher.close();
    await env.cleanup();
  });

  test('relayed messages land on their key partition with the recorded offset, headers and bytes intact', async () => {
    const topic = uniqueTopic('zl-prod');
    await createTopic(topic, 4);
    const outbox = testOutbox({ schema: env.schema });
    const relay = new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher, db: env.db, config: fast });
    await relay.start();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        const envelope = await inTransaction(env.pool, (tx) =>
          outbox.enqueue(tx, {
            topic,
            key: `user-${i % 7}`,
            type: 'award.created',
            payload: { i, text: 'ünïcødé ✓' },
            headers: { tenant: 't1' },
          }),
        );
        ids.push(envelope.id);
      }
      const records = await readTopic(topic, { done: (rs) => rs.length >= 40 });
      assert.equal(records.length, 40);
      // The relay records a batch after the broker acknowledged it: a consumer can read the records first.
      const rows = await waitFor(
        async () => {
          const { rows } = await env.pool.query(
            `select message_id, sent_partition, sent_offset::text as sent_offset, state from "${env.schema}".outbox where topic = $1`,
            [topic],
          );
          return rows.length === 40 && rows.every((r) => r.state === 1) ? rows : undefined;
        },
        { what: 'every row recorded as sent', timeoutMs: 10_000 },
      );
      const byId = new Map(rows.map((r) => [r.message_id, r]));
      for (const record of records) {
        const row = byId.get(record.headers['zl-id']!);
        assert.ok(row, 'every record comes from the outbox');
        assert.equal(row.state, 1);
        assert.equal(row.sent_partition, record.partition, 'recorded partition');
        assert.equal(row.sent_offset, record.offset.toString(), 'recorded offset');
        assert.equal(record.headers.tenant, 't1');
        assert.equal(record.headers['zl-type'], 'award.created');
        assert.equal(JSON.parse(record.value.toString()).text, 'ünïcødé ✓');
      }
      const partitions = new Map<string, Set<number>>();
      for (const r of records) partitions.set(r.key, (partitions.get(r.key) ?? new Set()).add(r.partition));
      for (const [key, set] of partitions) assert.equal(set.size, 1, `key ${key} stays on one partition`);
    } finally {
      await relay.stop();
    }
  });

  test('compressed batches (zstd, gzip) round-trip, and uuidv7 ids are accepted', async () => {
    const topic = uniqueTopic('zl-zstd');
    await createTopic(topic, 1);
    for (const compression of ['zstd', 'gzip'] as const) {
      const compressed = new KafkaPublisher({ brokers: KAFKA_BROKERS, compression });
      try {
        const outcomes = await compressed.publish([
          { topic, key: compression, value: Buffer.from(JSON.stringify({ text: 'x'.repeat(5000) })), headers: { 'zl-id': uuidv7() } },
        ]);
        assert.ok(outcomes[0]?.ok, `${compression} send acknowledged`);
      } finally {
        await compressed.close();
      }
    }
    const records = await readTopic(topic, { done: (rs) => rs.length >= 2 });
    assert.deepEqual(
      records.map((r) => JSON.parse(r.value.toString()).text.length),
      [5000, 5000],
    );
    assert.match(records[0]!.headers['zl-id']!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('a record the broker rejects as too large is parked at once; its key waits, other keys flow', async () => {
    const topic = uniqueTopic('zl-small');
    await createTopic(topic, 1, { 'max.message.bytes': '2048' });
    const outbox = testOutbox({ schema: env.schema });
    const relay = new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher, db: env.db, config: fast });
    const parked: string[] = [];
    relay.on('parked', (e) => parked.push(...e.messageIds));
    let bigId = '';
    await inTransaction(env.pool, async (tx) => {
      bigId = (await outbox.enqueue(tx, { topic, key: 'big', type: 'x', payload: 'z'.repeat(10_000) })).id;
      await outbox.enqueue(tx, { topic, key: 'big', type: 'x', payload: 'after the big one' });
      await outbox.enqueue(tx, { topic, key: 'small', type: 'x', payload: 'fine' });
    });
    await relay.start();
    try {
      await waitFor(() => parked.includes(bigId), { what: 'big row parked' });
      const records = await readTopic(topic, { done: (rs) => rs.some((r) => r.key === 'small') });
      assert.deepEqual(
        records.map((r) => r.key),
        ['small'],
      );
      const { rows } = await env.pool.query(
        `select msg_key, state, attempts, last_error from "${env.schema}".outbox where topic = $1 order by seq_id`,
        [topic],
      );
      assert.equal(rows[0].state, 3);
      assert.equal(rows[0].attempts, 1, 'a permanent rejection is not retried');
      assert.match(rows[0].last_error, /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/);
      assert.equal(rows[1].state, 0, 'the next row of the same key is held, not lost');
      assert.equal(rows[2].state, 1);
      const metrics = await relay.metrics();
      assert.equal(metrics.zeroloss_relay_parked_total, 1);
      assert.equal(metrics.zeroloss_outbox_parked, 1);
    } finally {
      await relay.stop();
    }
  });

  test('isolating a rejected record does not resend the records the broker already wrote', async () => {
    const topic = uniqueTopic('zl-mixed');
    await createTopic(topic, 2, { 'max.message.bytes': '2048' });
    const partitionOf = (key: string) => compatibilityPartitioner(undefined as never, Buffer.from(key)) % 2;
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const bigKey = keys.find((k) => partitionOf(k) === 0)!;
    const smallKeys = keys.filter((k) => partitionOf(k) === 1).slice(0, 3);
    const record = (key: string, size: number) => ({ topic, key, value: Buffer.alloc(size, 120), headers: { 'zl-id': key } });
    const outcomes = await publisher.publish([record(bigKey, 10_000), ...smallKeys.map((k) => record(k, 10))]);
    assert.equal(outcomes[0]?.ok, false);
    assert.ok(
      outcomes.slice(1).every((o) => o.ok),
      'the other partition was written',
    );
    const records = await readAll(topic);
    assert.deepEqual(records.map((r) => r.key).sort(), [...smallKeys].sort(), 'each small record is on the topic exactly once');
  });

  test('a message to a topic that does not exist waits: tried again and again, never charged or parked', async () => {
    const outbox = testOutbox({ schema: env.schema });
    const topic = uniqueTopic('zl-missing');
    const impatient = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 5_000, topicRecheckMs: 0 });
    const relay = new Relay({
      sources: new PostgresOutboxStore(env.db, { schema: env.schema }),
      publisher: impatient,
      db: env.db,
      config: { ...fast, maxAttempts: 3 },
    });
    const id = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: 'k', type: 'x', payload: 1 }))).id;
    await relay.start();
    try {
      const tries = async () =>
        (await relay.registry.getSingleMetric('zeroloss_relay_topic_unavailable_total')?.get())?.values.find(
          (v) => v.labels.topic === topic,
        )?.value ?? 0;
      await waitFor(async () => (await tries()) > 3, { what: 'more tries than maxAttempts', timeoutMs: 60_000 });
      // A claim counts its attempt up front and an uncharged failure takes it back: read the row between
      // rounds (not leased), or a round in flight shows attempts 1 (the same race failed a table-log twin).
      const row = async () =>
        (await env.pool.query(`select state, attempts, last_error, lease_owner from "${env.schema}".outbox where message_id = $1`, [id]))
          .rows[0];
      const between = await waitFor(
        async () => {
          const r = await row();
          return r.lease_owner === null ? r : undefined;
        },
        { what: 'the row between rounds', timeoutMs: 30_000 },
      );
      const rows = [between];
      assert.equal(rows[0].state, 2, 'failed, waiting for its topic; not parked');
      assert.equal(rows[0].attempts, 0, 'no attempt charged');
      assert.match(rows[0].last_error, /ZL_TOPIC_UNAVAILABLE.*zeroloss topics ensure/);
    } finally {
      await relay.stop();
      await impatient.close();
    }
  });

  test('state-column source: a business table with its own mq_state column is relayed in key order', async () => {
    const topic = uniqueTopic('zl-award');
    await createTopic(topic, 3);
    const table = `award_${Math.random().toString(16).slice(2, 8)}`;
    await env.pool.query(`create table public.${table} (
      id bigserial primary key, user_id text not null, order_id text not null, award_type text not null,
      mq_state smallint not null default 0, modified_time timestamptz not null default now())`);
    try {
      const source = new StateColumnSource<{ id: string; user_id: string; order_id: string; award_type: string }>(env.db, {
        name: `awards-${table}`,
        schema: env.schema,
        table,
        idColumn: 'id',
        stateColumn: 'mq_state',
        modifiedColumn: 'modified_time',
        keyColumn: 'user_id',
        toMessage: (row) => ({ topic, key: row.user_id, type: `award.${row.award_type}`, payload: { orderId: row.order_id } }),
      });
      for (let i = 0; i < 30; i++) {
        await inTransaction(env.pool, async (tx) => {
          await tx.query(`insert into public.${table} (user_id, order_id, award_type) values ($1, $2, $3)`, [
            `u${i % 4}`,
            `o${i}`,
            i % 2 ? 'physical' : 'virtual',
          ]);
          await source.notify(tx);
        });
      }
      const relay = new Relay({ sources: source, publisher, db: env.db, config: fast });
      await relay.start();
      try {
        const records = await readTopic(topic, { done: (rs) => rs.length >= 30 });
        await waitFor(
          async () => (await env.pool.query(`select count(*)::int as n from public.${table} where mq_state = 1`)).rows[0].n === 30,
        );
        const orderOf = (key: string) =>
          records.filter((r) => r.key === key).map((r) => Number(JSON.parse(r.value.toString()).orderId.slice(1)));
        for (const user of ['u0', 'u1', 'u2', 'u3']) {
          const orders = orderOf(user);
          assert.deepEqual(
            orders,
            [...orders].sort((a, b) => a - b),
            `${user} in order`,
          );
        }
        assert.equal(new Set(records.map((r) => r.headers['zl-id'])).size, 30, 'stable, distinct message ids');
      } finally {
        await relay.stop();
      }
      await assert.rejects(
        new StateColumnSource(env.db, {
          name: 'nope',
          table: 'no_such_table',
          idColumn: 'id',
          stateColumn: 's',
          modifiedColumn: 'm',
          toMessage: () => ({ topic, key: 'k', type: 't', payload: 1 }),
        }).verify(),
        { code: 'ZL_UNKNOWN_TABLE' },
      );
    } finally {
      await env.pool.query(`drop table if exists public.${table}`);
    }
  });

  test('embedded: outbox on a file-backed PGlite relays to Kafka', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zl-pglite-'));
    const pglite = await PGlite.create(dir);
    const db = pgliteDatabase(pglite);
    await migrate(db, 'zeroloss');
    const topic = uniqueTopic('zl-pglite');
    await createTopic(topic, 2);
    const outbox = testOutbox({});
    const relay = new Relay({ sources: new PostgresOutboxStore(db, {}), publisher, db, config: fast });
    await relay.start();
    try {
      await pglite.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await outbox.enqueue(tx, { topic, key: `k${i % 3}`, type: 'x', payload: i });
      });
      await assert.rejects(
        pglite.transaction(async (tx) => {
          await outbox.enqueue(tx, { topic, key: 'rolled', type: 'x', payload: 'never' });
          throw new Error('rollback');
        }),
      );
      const records = await readTopic(topic, { done: (rs) => rs.length >= 10 });
      assert.equal(records.length, 10);
      assert.ok(!records.some((r) => r.key === 'rolled'));
    } finally {
      await relay.stop();
      await pglite.close();
    }
  });

  test('zeroloss doctor flags a topic with replication factor 1 and min.insync.replicas 1, and a weak producer', async () => {
    const topic = uniqueTopic('zl-weak');
    const ensured = await cli(['topics', 'ensure', topic, '--partitions', '2', '--kafka', KAFKA_BROKERS.join(','), '--json']);
    assert.equal(ensured.code, 0, ensured.stderr);
    assert.equal(JSON.parse(ensured.stdout).created, true);
    const result = await cli(['doctor', '--kafka', KAFKA_BROKERS.join(','), '--topic', topic, '--json']);
    assert.equal(result.code, 1, 'doctor exits non-zero when the profile is broken');
    const report = JSON.parse(result.stdout);
    const settings = report.findings.filter((f: { severity: string }) => f.severity === 'error').map((f: { setting: string }) => f.setting);
    assert.ok(settings.includes('replication.factor'), JSON.stringify(report.findings));
    assert.ok(settings.includes('min.insync.replicas'));
    const dir = mkdtempSync(join(tmpdir(), 'zl-doctor-'));
    writeFileSync(join(dir, 'producer.json'), JSON.stringify({ acks: 1, idempotent: false }));
    const weak = await cli([
      'doctor',
      '--kafka',
      KAFKA_BROKERS.join(','),
      '--topic',
      topic,
      '--producer-config',
      join(dir, 'producer.json'),
      '--json',
    ]);
    const weakSettings = JSON.parse(weak.stdout).findings.map((f: { setting: string }) => f.setting);
    assert.ok(weakSettings.includes('acks') && weakSettings.includes('enable.idempotence'));
    const text = await cli(['doctor', '--kafka', KAFKA_BROKERS.join(','), '--topic', topic]);
    assert.match(text.stdout, /FAIL/);
  });

  test('zeroloss migrate is idempotent and rejects a bad schema name', async () => {
    const url = (env.pool.options as { connectionString: string }).connectionString;
    const schema = `zlm_${Math.random().toString(16).slice(2, 8)}`;
    try {
      const first = await cli(['migrate', '--pg', url, '--schema', schema, '--json']);
      assert.equal(first.code, 0, first.stderr);
      assert.ok(JSON.parse(first.stdout).applied.length >= 1);
      const second = await cli(['migrate', '--pg', url, '--schema', schema, '--json']);
      assert.deepEqual(JSON.parse(second.stdout).applied, []);
      const bad = await cli(['migrate', '--pg', url, '--schema', 'bad"; drop table x; --']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /ZL_INVALID_IDENTIFIER/);
    } finally {
      await env.pool.query(`drop schema if exists "${schema}" cascade`);
    }
  });
});
