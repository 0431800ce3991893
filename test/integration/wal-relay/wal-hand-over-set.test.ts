import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { inStreamCondition } from '../../../src/adapters/postgres/stream-sent-sql.ts';
import { walShardSql } from '../../../src/adapters/postgres/wal/wal-shard-sql.ts';
import { walSql } from '../../../src/adapters/postgres/wal/wal-sql.ts';
import { walShardOf } from '../../../src/core/wal-shard.ts';
import { insertOnly } from '../../helpers/insert-only.ts';
import { startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * The statements that scan the whole outbox for rows still in the stream (the hand-overs when a slot is made
 * or dropped, the shard-count check) find them set-based: the batches' seq_ids hashed once, the outbox
 * anti-joined against them. Row at a time (a GiST lookup and an array scan per outbox row) a million retained
 * rows took 18-25 s, under the drop's table lock. Checked here: they move exactly the rows the row-at-a-time
 * derivation (`inStreamCondition`, the readers' one) calls in the stream, and the batches are read once per
 * statement, not once per outbox row.
 */
let instance: PostgresInstance;
let s: WalSchema;
let q: string;
before(async () => {
  instance = await startWalPostgres('hand-over-set');
  s = await walSchema(instance.url, { createSlot: false });
  q = `"${s.schema}"`;
  await insertOnly(s.pool, s.schema);
  const insert = (prefix: string, n: number, state = '1') =>
    s.pool.query(
      `insert into ${q}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload, state)
       select $1 || '-' || g, 't', 'k' || (g % 97), 'x', 't', 'p', '{}'::jsonb, '\\x00'::bytea, ${state} from generate_series(1, $2::int) g`,
      [prefix, n],
    );
  // Inserted for the stream: most listed by batches of slot a, some by slot b, some by none.
  await insert('stream', 3000);
  const listedBy = (slot: string, which: string) =>
    s.pool.query(
      `insert into ${q}.outbox_wal_batch (slot, end_lsn, seq_lo, seq_hi, seq_ids, partitions, offsets)
       select $1, null, min(seq_id), max(seq_id), array_agg(seq_id order by seq_id), array_agg(0), array_agg(seq_id)
       from ${q}.outbox where ${which} group by seq_id / 100 order by 1`,
      [slot],
    );
  await listedBy('a', 'seq_id % 7 <> 0');
  await listedBy('b', 'seq_id % 14 = 0');
  // Unlisted but sent on the row (a repair, a resend): not in the stream.
  await s.pool.query(`update ${q}.outbox set sent_at = now() where seq_id % 7 = 0 and seq_id % 3 = 0`);
  // Pending for the polling path (the old default), failed, parked.
  await insert('pending', 40, '0');
  await insert('failed', 10, '2');
  await insert('parked', 10, '3');
  await s.pool.query(`analyze ${q}.outbox`);
  await s.pool.query(`analyze ${q}.outbox_wal_batch`);
});
after(async () => {
  await s?.cleanup();
  await instance?.stop('fast');
});

/** Runs `statement` in a transaction that is rolled back; resolves to the seq_ids it handed over and its result. */
async function moved(statement: string, reason: string): Promise<{ ids: number[]; rows: Array<Record<string, unknown>> }> {
  const c = await s.pool.connect();
  try {
    await c.query('begin');
    const { rows } = await c.query(statement, ['test']);
    const { rows: ids } = await c.query<{ seq_id: string }>(`select seq_id from ${q}.outbox where last_error = $1 order by seq_id`, [
      reason,
    ]);
    return { ids: ids.map((r) => Number(r.seq_id)), rows };
  } finally {
    await c.query('rollback');
    c.release();
  }
}

async function ids(where: string): Promise<number[]> {
  const { rows } = await s.pool.query<{ seq_id: string; msg_key: string }>(
    `select seq_id from ${q}.outbox o where ${where} order by seq_id`,
  );
  return rows.map((r) => Number(r.seq_id));
}

/** How often each scan of `outbox_wal_batch` ran in the statement's plan (analyzed, rolled back, no parallel workers). */
async function batchScanLoops(statement: string, params: unknown[]): Promise<number[]> {
  const c: pg.PoolClient = await s.pool.connect();
  try {
    await c.query('begin');
    await c.query('set local max_parallel_workers_per_gather = 0');
    const { rows } = await c.query(`explain (analyze, format json) ${statement}`, params);
    const loops: number[] = [];
    const walk = (node: Record<string, unknown>) => {
      if (node['Relation Name'] === 'outbox_wal_batch') loops.push(Number(node['Actual Loops']));
      for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    walk((rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]?.Plan as Record<string, unknown>);
    return loops;
  } finally {
    await c.query('rollback');
    c.release();
  }
}

const CREATED = 'handed to the polling path when the WAL slot was created';
const DROPPED = 'handed to the polling path when the WAL slot was dropped';

test('the hand-overs move exactly the rows in the stream that no batch lists (and, when a slot is made, the pending ones)', async () => {
  const w = walSql(q, { publication: 'p' });
  const inStream = await ids(inStreamCondition(q, 'o'));
  const pending = await ids('o.state = 0');
  assert.ok(inStream.length > 100 && pending.length === 40, `the situation under test: ${inStream.length} in the stream`);

  const dropped = await moved(w.handOverInStream, DROPPED);
  assert.deepEqual(dropped.ids, inStream, 'dropping the slot hands over the rows still in the stream, nothing else');
  assert.equal(dropped.rows[0]?.n, inStream.length);

  const created = await moved(w.handOver, CREATED);
  const expected = [...inStream, ...pending].sort((a, b) => a - b);
  assert.deepEqual(created.ids, expected, 'making a slot hands over those and the pending rows');
  assert.equal(created.rows[0]?.n, expected.length);
});

test("the shards' hand-over takes the made shards' rows, counted per shard, and the count check counts what is left", async () => {
  const sh = walShardSql(q);
  const { rows: keyed } = await s.pool.query<{ seq_id: string; msg_key: string }>(
    `select seq_id, msg_key from ${q}.outbox o where o.state = 0 or ${inStreamCondition(q, 'o')}`,
  );
  const ofShard = (shard: number) =>
    keyed
      .filter((r) => walShardOf(r.msg_key, 3) === shard)
      .map((r) => Number(r.seq_id))
      .sort((a, b) => a - b);
  const created = await moved(sh.handOver([0, 2], 3), CREATED);
  assert.deepEqual(
    created.ids,
    [...ofShard(0), ...ofShard(2)].sort((a, b) => a - b),
  );
  assert.deepEqual(
    new Map(created.rows.map((r) => [Number(r.shard), Number(r.n)])),
    new Map([
      [0, ofShard(0).length],
      [2, ofShard(2).length],
    ]),
  );
  const unsent = (await s.pool.query<{ n: number }>(sh.unsent)).rows[0]?.n;
  assert.equal(unsent, keyed.length + 10, 'pending, in the stream, and failed');
});

test('the batches are read once per statement, not once per outbox row', async () => {
  const w = walSql(q, { publication: 'p' });
  const sh = walShardSql(q);
  for (const [name, statement, params] of [
    ['handOverInStream', w.handOverInStream, ['test']],
    ['handOver', w.handOver, ['test']],
    ["shards' handOver", sh.handOver([0, 1], 2), ['test']],
    ['unsent', sh.unsent, []],
  ] as const) {
    const loops = await batchScanLoops(statement, [...params]);
    assert.ok(loops.length > 0, `${name} reads the batches`);
    assert.deepEqual(
      loops.filter((n) => n > 1),
      [],
      `${name}: every scan of outbox_wal_batch runs once (loops ${loops.join(', ')}), not per outbox row`,
    );
  }
});
