import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { insertOnly } from '../../helpers/insert-only.ts';
import { recordingDatabase, type RanStatement } from '../../helpers/recording-database.ts';
import { freshSchema } from '../../helpers/pg.ts';

const ROWS = 30_000;
const STUCK_AFTER_MS = 300_000;

/**
 * `status` (which `zeroloss serve` runs every 15 s) must not read the whole outbox. Rows still in the WAL
 * stream (the insert-only mode) have no index of their own: they are found from a floor seq_id up, a range
 * of the primary key. Computed inside the statement, the floor was invisible to the planner, which read the
 * whole table even when there was no floor at all (an outbox that never had the mode) or an old one (the
 * mode left with its batch rows kept). Here the statements are explained as the store runs them, with
 * their parameters, on ~30k sent rows: no sequential scan of the outbox, and the counts right.
 */
describe('status finds the rows still in the WAL stream without a scan of the outbox', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let s: string;
  let store: PostgresOperationsStore;
  let ran: RanStatement[];

  beforeEach(async () => {
    env = await freshSchema('zlsfl');
    s = `"${env.schema}"`;
    const recording = recordingDatabase(env.db);
    ran = recording.ran;
    store = new PostgresOperationsStore(recording.db, { schema: env.schema });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  /** n rows as the enqueue writes them (state from the column's default), created `agoMs` ago; their seq_id range. */
  const insert = async (n: number, tag: string, agoMs = 0, topic = 'points') => {
    const { rows } = await env.pool.query(
      `with ins as (
         insert into ${s}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload, created_at)
         select $1 || '-' || g, $2, 'k' || (g % 100), 'credit', 't', 'p', '{}'::jsonb, '\\x00'::bytea, now() - $3 * interval '1 millisecond'
         from generate_series(1, $4::int) g returning seq_id)
       select min(seq_id)::text as lo, max(seq_id)::text as hi from ins`,
      [tag, topic, agoMs, n],
    );
    return { lo: rows[0].lo as string, hi: rows[0].hi as string };
  };
  /** Rows lo..hi sent and recorded on the row, as the polling relay (or the WAL relay's row mode) does. */
  const sentOnRow = (r: { lo: string; hi: string }) =>
    env.pool.query(
      `update ${s}.outbox set state = 1, sent_at = now(), sent_partition = 0, sent_offset = seq_id where seq_id between $1 and $2`,
      [r.lo, r.hi],
    );
  /** Rows lo..hi listed by batches of 2,000 (one outbox_wal_batch row each), as the insert-only relay records them. */
  const listed = (r: { lo: string; hi: string }) =>
    env.pool.query(
      `insert into ${s}.outbox_wal_batch (slot, end_lsn, seq_lo, seq_hi, seq_ids, partitions, offsets)
       select 'test_slot', null, min(seq_id), max(seq_id), array_agg(seq_id order by seq_id), array_agg(0), array_agg(seq_id)
       from ${s}.outbox where seq_id between $1 and $2 group by (seq_id - $1) / 2000 order by min(seq_id)`,
      [r.lo, r.hi],
    );
  const analyze = async () => {
    await env.pool.query(`vacuum analyze ${s}.outbox`);
    await env.pool.query(`analyze ${s}.outbox_wal_batch`);
  };

  /** Runs status's two outbox reads, then explains every statement they ran: the sequential scans of the outbox. */
  const statusRound = async () => {
    ran.length = 0;
    const summary = await store.outboxSummary(STUCK_AFTER_MS);
    const byTopic = await store.unsentByTopic();
    const scans: string[] = [];
    for (const { sql, params } of ran) {
      const { rows } = await env.pool.query(`explain (format json) ${sql}`, params);
      const walk = (node: Record<string, unknown>): void => {
        if (String(node['Node Type']).includes('Seq Scan') && node['Relation Name'] === 'outbox')
          scans.push(`${node['Node Type']} on outbox in: ${sql.trim().slice(0, 80)}`);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk((rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]?.Plan ?? {});
    }
    return { summary, byTopic, scans, statements: ran.length };
  };

  test('an outbox that never had the insert-only mode: only the unsent rows are read', async () => {
    await sentOnRow(await insert(ROWS, 'sent', 60_000));
    await insert(3, 'pending');
    const old = await insert(2, 'old', 600_000);
    await env.pool.query(`update ${s}.outbox set state = 2, last_error = 'E: boom' where seq_id = $1`, [old.lo]);
    await insert(1, 'parked', 0, 'other');
    await env.pool.query(`update ${s}.outbox set state = 3 where message_id = 'parked-1'`);
    await analyze();

    const r = await statusRound();
    assert.deepEqual(r.scans, []);
    assert.deepEqual(
      { ...r.summary, oldestUnsentAgeMs: r.summary.oldestUnsentAgeMs >= 600_000 },
      { pending: 4, failed: 1, parked: 1, stuck: 2, oldestUnsentAgeMs: true, insertOnly: false },
    );
    assert.deepEqual(r.byTopic, [{ topic: 'points', unsent: 5, topicUnavailable: 0, topicError: null }]);
  });

  test('the insert-only mode with batches, then left (--drop-slot) with its batch rows kept: the counts stay right, no scan', async () => {
    // Sent by the polling relay before the mode, then the mode: rows listed by batches, some still in the stream.
    await sentOnRow(await insert(ROWS / 2, 'before', 60_000));
    await insertOnly(env.pool, env.schema);
    await listed(await insert(ROWS / 2, 'listed', 60_000));
    await insert(4, 'stream');
    await insert(1, 'stream-old', 600_000, 'other');
    await analyze();

    let r = await statusRound();
    assert.deepEqual(r.scans, []);
    assert.deepEqual(
      { ...r.summary, oldestUnsentAgeMs: r.summary.oldestUnsentAgeMs >= 600_000 },
      { pending: 5, failed: 0, parked: 0, stuck: 1, oldestUnsentAgeMs: true, insertOnly: true },
    );
    assert.deepEqual(r.byTopic, [
      { topic: 'other', unsent: 1, topicUnavailable: 0, topicError: null },
      { topic: 'points', unsent: 4, topicUnavailable: 0, topicError: null },
    ]);

    // --drop-slot leaves the mode: the rows still in the stream go to the polling path (state 0) and the
    // default back to 0, in one transaction. The batch rows stay (retention takes them with their rows).
    await env.pool.query(
      `update ${s}.outbox o set state = 0 where o.state = 1 and o.sent_at is null
         and not exists (select 1 from ${s}.outbox_wal_batch b where o.seq_id = any(b.seq_ids))`,
    );
    await insertOnly(env.pool, env.schema, false);
    // The polling relay sends everything from here on, recorded on the row (enough rows for the planner to
    // read them in parallel, as it did on any large outbox).
    await sentOnRow(await insert(100_000, 'after'));
    await insert(2, 'pending');
    await analyze();

    r = await statusRound();
    assert.deepEqual(r.scans, []);
    assert.deepEqual(
      { ...r.summary, oldestUnsentAgeMs: r.summary.oldestUnsentAgeMs >= 600_000 },
      { pending: 7, failed: 0, parked: 0, stuck: 1, oldestUnsentAgeMs: true, insertOnly: false },
    );
    assert.deepEqual(r.byTopic, [
      { topic: 'other', unsent: 1, topicUnavailable: 0, topicError: null },
      { topic: 'points', unsent: 6, topicUnavailable: 0, topicError: null },
    ]);
  });
});
