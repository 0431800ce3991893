import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { migrate } from '../../../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import { insertOnly, recordBatch } from '../../helpers/insert-only.ts';
import { recordingDatabase } from '../../helpers/recording-database.ts';
import { uniqueName } from '../../helpers/pg.ts';
import { startWalPostgres } from '../wal-relay/wal-postgres.ts';

/**
 * A stalled shard stays in `status` (and so in serve's gauges). In the insert-only mode the rows still in
 * the WAL stream are found from a floor seq_id up: the lowest seq_id of the newest three batches. Taken
 * across all slots, the floor passed every row of a shard whose relay stalled (it keeps reading its slot but
 * cannot publish, so it records nothing) as soon as another shard recorded three batches: its rows, waiting
 * for twenty minutes, vanished from pending, stuck and the oldest unsent age. The floor is taken per slot
 * that exists now: the lowest of the slots' own floors. Real logical slots on a throwaway server (the
 * shared one has no logical decoding); the relays' part, writing batch rows, is played by hand.
 */
let instance: PostgresInstance;
let pool: pg.Pool;
let db: Database;
let schema: string;
const slots = { a: uniqueName('zlt_a'), b: uniqueName('zlt_b'), c: uniqueName('zlt_c') };

before(async () => {
  instance = await startWalPostgres('status-stalled-slot');
  pool = new pg.Pool({ connectionString: instance.url, max: 5 });
  pool.on('error', () => {});
  db = pgDatabase({ pool });
  schema = uniqueName('zlss');
  await migrate(db, schema);
  for (const slot of Object.values(slots)) await pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
});
after(async () => {
  for (const slot of Object.values(slots)) await pool?.query('select pg_drop_replication_slot($1)', [slot]).catch(() => {});
  await pool?.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
  await pool?.end().catch(() => {});
  await instance?.stop('fast');
});

test('a slot whose relay stopped recording keeps its rows in status while another slot records batch after batch', async () => {
  const s = `"${schema}"`;
  await insertOnly(pool, schema);
  const recording = recordingDatabase(db);
  const ran = recording.ran;
  const store = new PostgresOperationsStore(recording.db, { schema });
  /** n rows inserted for the stream (state 1 from the default), created `agoMs` ago; their seq ids. */
  const insert = async (n: number, tag: string, agoMs = 0): Promise<string[]> =>
    (
      await pool.query(
        `insert into ${s}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload, created_at)
         select $1 || '-' || g, 'points', 'k' || g, 'credit', 't', 'p', '{}'::jsonb, '\\x00'::bytea, now() - $2 * interval '1 millisecond'
         from generate_series(1, $3::int) g returning seq_id::text`,
        [tag, agoMs, n],
      )
    ).rows.map((r) => r.seq_id as string);
  let lsn = 0x1000;
  /** One batch of `slot` listing `ids`, as its relay records it after the broker confirmed. */
  const batch = async (slot: string, ids: string[]) => {
    lsn += 0x100;
    await recordBatch(
      pool,
      schema,
      ids.map((seqId, i) => ({ seqId, partition: 0, offset: i })),
      { slot, endLsn: `0/${lsn.toString(16)}` },
    );
  };
  const TWENTY_MIN = 20 * 60_000;

  // A slot since dropped recorded the first rows: its batches no longer say anything about a stream.
  await batch('zlt_gone', await insert(3, 'gone', 2 * TWENTY_MIN));
  // Rows of slot c's stream, which no relay has read yet (slot c has no batch).
  await insert(7, 'c', TWENTY_MIN);
  // Slot b recorded one batch, then its relay stalled: its next rows wait in its stream.
  const bFirst = await insert(5, 'b0', TWENTY_MIN);
  await batch(slots.b, bFirst);
  await batch(slots.a, await insert(30, 'a0', TWENTY_MIN));
  await insert(12, 'b', TWENTY_MIN);
  // Slot a goes on: four more batches.
  for (let i = 1; i <= 4; i++) await batch(slots.a, await insert(3, `a${i}`));

  ran.length = 0;
  let summary = await store.outboxSummary(300_000);
  assert.deepEqual(
    { ...summary, oldestUnsentAgeMs: summary.oldestUnsentAgeMs >= TWENTY_MIN },
    { pending: 12, failed: 0, parked: 0, stuck: 12, oldestUnsentAgeMs: true, insertOnly: true },
    "slot b's twelve rows, waiting for twenty minutes",
  );
  assert.deepEqual(await store.unsentByTopic(), [{ topic: 'points', unsent: 12, topicUnavailable: 0, topicError: null }]);
  // From slot b's floor up; the dropped slot's old batches do not hold the floor down.
  assert.ok(
    ran.some((x) => x.params.includes(bFirst[0])),
    `the floor passed is slot b's first row ${bFirst[0]}: ${JSON.stringify(ran.map((x) => x.params))}`,
  );

  // As shards (wal_shard, migration 18), a, b and c are this outbox's slots: c exists and has no batch yet,
  // so every row still in the stream counts, as before the first batch of the insert-only mode.
  await pool.query(
    `insert into ${s}.wal_shard (shard, shards, slot, publication) values (0, 3, $1, 'p0'), (1, 3, $2, 'p1'), (2, 3, $3, 'p2')`,
    [slots.a, slots.b, slots.c],
  );
  summary = await store.outboxSummary(300_000);
  assert.equal(summary.pending, 19, "slot b's twelve rows and slot c's seven");
  assert.equal(summary.stuck, 19);
  assert.deepEqual(await store.unsentByTopic(), [{ topic: 'points', unsent: 19, topicUnavailable: 0, topicError: null }]);

  // Slot c's relay records its rows; slot b stays stalled.
  const cRows = (await pool.query(`select seq_id::text from ${s}.outbox where message_id like 'c-%' order by seq_id`)).rows;
  await batch(
    slots.c,
    cRows.map((r) => r.seq_id),
  );
  summary = await store.outboxSummary(300_000);
  assert.equal(summary.pending, 12);
  assert.equal(summary.stuck, 12);
});
