import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { operationsSql } from '../../../src/adapters/postgres/operations-sql.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { PostgresSequenceStore } from '../../../src/adapters/postgres/postgres-sequence-store.ts';
import { sequenceSql } from '../../../src/adapters/postgres/sequence-sql.ts';
import {
  derivedOffset,
  derivedPartition,
  derivedSent,
  derivedSentAt,
  derivedState,
  walBatchJoin,
} from '../../../src/adapters/postgres/stream-sent-sql.ts';
import { quoteIdent } from '../../../src/core/identifier.ts';
import type { OutboxCursor } from '../../../src/ports/operations-store.ts';
import { insertOnly } from '../../helpers/insert-only.ts';
import { freshSchema } from '../../helpers/pg.ts';

/**
 * Two periodic readers of the insert-only mode's sends, reconcile's outbox window and the producer marks
 * `serve` publishes every 10 s, look up the batches of many rows at once (stream-sent-sql.ts `walBatchCtes`)
 * instead of one row at a time (`walBatchJoin`). Over a mixed outbox their answers must be what the row-at-a-
 * time statements (rebuilt here as they were) answer, and their plans must read the batches a few times per
 * statement, not once per row.
 */
describe('reconcile windows and producer marks look up the batches of all their rows at once', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let s: string;
  const window = { from: new Date(Date.now() - 600_000), to: new Date(Date.now() + 600_000) };

  before(async () => {
    env = await freshSchema('zlbls');
    s = quoteIdent(env.schema, 'schema');
    const q = (sql: string, params: unknown[] = []) => env.pool.query(sql, params);
    /** n rows as the enqueue writes them (state from the column default), created `agoMs` ago, key_seq 1.. per key. */
    const insert = async (n: number, tag: string, agoMs: number) => {
      const { rows } = await q(
        `with ins as (
           insert into ${s}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload, created_at, key_seq)
           select $1 || '-' || g, 'points', $1 || (g % 50), 'credit', 't', $1, '{}'::jsonb, '\\x00'::bytea,
                  now() - $2 * interval '1 millisecond' + g * interval '1 microsecond', g / 50 + 1
           from generate_series(1, $3::int) g returning seq_id)
         select min(seq_id)::text as lo, max(seq_id)::text as hi from ins`,
        [tag, agoMs, n],
      );
      return { lo: rows[0].lo as string, hi: rows[0].hi as string };
    };
    /** Batches of `size` of the rows lo..hi matching `filter`, as the relay's ledger writes them. */
    const listed = (r: { lo: string; hi: string }, size: number, filter = 'true', partition = 1) =>
      q(
        `insert into ${s}.outbox_wal_batch (slot, end_lsn, seq_lo, seq_hi, seq_ids, partitions, offsets)
         select 'test_slot', null, min(seq_id), max(seq_id), array_agg(seq_id order by seq_id), array_agg($4::int), array_agg(seq_id * 10 order by seq_id)
         from (select seq_id, row_number() over (order by seq_id) as n from ${s}.outbox where seq_id between $1 and $2 and ${filter}) x
         group by (x.n - 1) / $3 order by min(seq_id)`,
        [r.lo, r.hi, size, partition],
      );

    // Before the mode: row-mode rows, sent on the row (and a few pending, failed, parked).
    const rowMode = await insert(3_000, 'rowmode', 300_000);
    await q(`update ${s}.outbox set state = 1, sent_at = now(), sent_partition = 0, sent_offset = seq_id where seq_id between $1 and $2`, [
      rowMode.lo,
      rowMode.hi,
    ]);
    await q(
      `update ${s}.outbox set state = 0, sent_at = null, sent_partition = null, sent_offset = null where seq_id between $1 and $1 + 9`,
      [rowMode.lo],
    );
    await q(
      `update ${s}.outbox set state = 2, sent_at = null, sent_partition = null, sent_offset = null, last_error = 'E' where seq_id between $1 + 10 and $1 + 19`,
      [rowMode.lo],
    );
    await q(
      `update ${s}.outbox set state = 3, sent_at = null, sent_partition = null, sent_offset = null, last_error = 'P' where seq_id between $1 + 20 and $1 + 29`,
      [rowMode.lo],
    );

    await insertOnly(env.pool, env.schema);
    // Insert-only rows in batches of 500; a few hundred left in the stream.
    const batched = await insert(6_000, 'batched', 240_000);
    await listed({ lo: batched.lo, hi: String(BigInt(batched.hi) - 300n) }, 500);
    // One large transaction interleaved with others: one batch lists every third row of a wide range (it spans
    // the rows of the batches of 700 that list the rest), as a transaction that ran alongside them would.
    const interleaved = await insert(9_000, 'interleaved', 180_000);
    await listed(interleaved, 9_000, 'seq_id % 3 = 0', 2);
    await listed(interleaved, 700, 'seq_id % 3 <> 0', 3);
    // Listed by a batch and then sent on the row (a repair): the row's position wins.
    await q(`update ${s}.outbox set sent_at = now(), sent_partition = 9, sent_offset = 9 where seq_id between $1 and $1 + 4`, [
      interleaved.lo,
    ]);
    // A transaction that started early and inserted last: created before every row above, numbered after them.
    const late = await insert(400, 'late', 310_000);
    await listed({ lo: late.lo, hi: String(BigInt(late.lo) + 199n) }, 200, 'true', 4);
    await q(`vacuum analyze ${s}.outbox`);
    await q(`analyze ${s}.outbox_wal_batch`);
  });
  after(async () => {
    await env.cleanup();
  });

  // The statements as they were, one row at a time.
  const rowAtATime = () => {
    const columns = `o.seq_id::text, o.message_id, o.topic, o.msg_key, o.msg_type, o.trace_id, o.producer_id, o.key_seq::text,
      ${derivedState()} as state, o.attempts, o.last_error, o.created_at, o.modified_time, o.next_attempt_at, o.lease_owner,
      o.lease_until, ${derivedSentAt()} as sent_at, ${derivedPartition()} as sent_partition, ${derivedOffset()}::text as sent_offset,
      ${derivedState()} = 0 and o.state = 1 as in_stream`;
    return {
      outboxWindow: `
        select ${columns}, o.created_at::text as at_text from ${s}.outbox o ${walBatchJoin(s, 'o')}
        where o.created_at >= $1 and o.created_at < $2 and ($3::text[] is null or o.topic = any($3::text[]))
          and ($4::timestamptz is null or (o.created_at, o.seq_id) > ($4::timestamptz, $5::bigint))
        order by o.created_at, o.seq_id
        limit $6`,
      recentSentMarks: `
        select distinct on (x.producer_id, x.topic, x.msg_key) x.producer_id, x.topic, x.msg_key, x.key_seq::text,
               x.sent_partition, x.sent_offset::text
        from (
          select o.producer_id, o.topic, o.msg_key, o.key_seq, ${derivedPartition()} as sent_partition, ${derivedOffset()} as sent_offset
          from ${s}.outbox o ${walBatchJoin(s)}
          where o.created_at > now() - $1 * interval '1 millisecond' and o.key_seq > 0 and ${derivedSent()}
            and ${derivedPartition()} is not null and ${derivedOffset()} is not null
          union all
          select p.producer_id, r.topic, r.msg_key, r.key_seq, r.sent_partition, r.sent_offset
          from ${s}.source_row r join unnest($3::text[], $4::text[]) as p(source, producer_id) on r.source = p.source
          where r.claimed_at > now() - $1 * interval '1 millisecond' and r.key_seq > 0 and r.topic is not null
            and r.msg_key is not null and r.sent_partition is not null and r.sent_offset is not null and r.discarded_at is null
        ) x
        order by x.producer_id, x.topic, x.msg_key, x.key_seq desc
        limit $2`,
    };
  };

  /** How often each plan node over the batch table ran (EXPLAIN ANALYZE); most loops first. */
  const batchLoops = async (sql: string, params: unknown[]) => {
    const { rows } = await env.pool.query(`explain (analyze, format json) ${sql}`, params);
    const loops: number[] = [];
    const walk = (node: Record<string, unknown>): void => {
      if (node['Relation Name'] === 'outbox_wal_batch') loops.push(Number(node['Actual Loops']));
      for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
    };
    walk((rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]?.Plan ?? {});
    return loops.sort((a, b) => b - a);
  };

  test("reconcile's window: every page as the row-at-a-time statement gives it", async () => {
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const reference = rowAtATime().outboxWindow;
    let cursor: OutboxCursor | undefined;
    let pages = 0;
    let rows = 0;
    const states = new Map<string, number>();
    for (;;) {
      const page = await store.outboxWindow(window, undefined, cursor, 1_000);
      const { rows: expected } = await env.pool.query(reference, [
        window.from,
        window.to,
        null,
        cursor?.at ?? null,
        cursor?.seqId ?? null,
        1_000,
      ]);
      assert.deepEqual(
        page.map((r) => [r.seqId, r.state, r.sentAt?.getTime() ?? null, r.sentPartition, r.sentOffset, r.inStream, r.cursor.at]),
        expected.map((r) => [
          r.seq_id,
          r.state,
          r.sent_at?.getTime() ?? null,
          r.sent_partition,
          r.sent_offset === null ? null : BigInt(r.sent_offset),
          r.in_stream,
          r.at_text,
        ]),
        `page ${pages}`,
      );
      for (const r of page) {
        const key = `${r.state}:${r.inStream ? 'stream' : r.sentPartition}`;
        states.set(key, (states.get(key) ?? 0) + 1);
      }
      pages++;
      rows += page.length;
      if (page.length < 1_000) break;
      cursor = page.at(-1)?.cursor;
    }
    assert.equal(rows, 18_400);
    // Every kind of row was there: pending, failed, parked, sent on the row (0, and the repair's 9), listed by
    // each batch kind (1, 2, 3, 4), in the stream.
    const n = (key: string) => states.get(key) ?? 0;
    assert.deepEqual(
      [n('0:null'), n('2:null'), n('3:null'), n('0:stream'), n('1:0'), n('1:1'), n('1:4'), n('1:9')],
      [10, 10, 10, 300 + 200, 2_970, 5_700, 200, 5],
    );
    assert.ok(n('1:2') >= 2_998 && n('1:2') + n('1:3') + n('1:9') === 9_000, 'the wide batch and the batches it spans');
  });

  test('the producer marks: the same marks as the row-at-a-time statement', async () => {
    const sequences = new PostgresSequenceStore(env.db, { schema: env.schema });
    const marks = await sequences.recentSentMarks(3_600_000, 100_000);
    const { rows } = await env.pool.query(rowAtATime().recentSentMarks, [3_600_000, 100_000, [], []]);
    assert.ok(marks.length > 150);
    assert.deepEqual(
      marks.map((m) => [m.producerId, m.topic, m.key, m.seq, m.partition, m.offset]),
      rows.map((r) => [r.producer_id, r.topic, r.msg_key, Number(r.key_seq), Number(r.sent_partition), BigInt(r.sent_offset)]),
    );
  });

  test('the batches are read a few times per statement, not once per row', async () => {
    const ops = operationsSql(s);
    const seq = sequenceSql(s);
    const windowParams = [window.from, window.to, null, null, null, 5_000];
    const marksParams = [3_600_000, 100_000, [], []];
    // The row-at-a-time statements read them once per row still to look up.
    assert.ok(((await batchLoops(rowAtATime().outboxWindow, windowParams))[0] ?? 0) > 1_000);
    assert.ok(((await batchLoops(rowAtATime().recentSentMarks, marksParams))[0] ?? 0) > 10_000);
    // The page's rows form a few runs of seq_ids (the late transaction's is one), each looked up once.
    for (const loops of [await batchLoops(ops.outboxWindow, windowParams), await batchLoops(seq.recentSentMarks, marksParams)]) {
      assert.ok(loops.length > 0, 'the batches are read');
      assert.ok((loops[0] ?? 0) <= 10, `batch reads: ${loops.join(', ')}`);
    }
  });
});
