/**
 * How every reader tells what became of an outbox row once the WAL relay may record sends per batch
 * (migration 21, docs/wal-relay.md "Insert-only outbox"). In one place, so no statement reads `state = 1`
 * as "sent" on its own.
 *
 * - state 1 with `sent_at`: sent, recorded on the row (the polling relay, the WAL relay's row mode, a repair).
 * - state 1 without `sent_at`: inserted for the WAL stream (insert-only mode). Sent if an `outbox_wal_batch`
 *   row lists its seq_id (partition, offset and time from there); otherwise still in the stream: pending.
 * - 0, 2, 3: pending, failed, parked, as always.
 *
 * `s` is the validated, quoted schema; `o` the outbox row's alias in the statement.
 */

/**
 * A lateral join adding `wb.at`, `wb.part`, `wb.off` (all null unless a batch records the row's send). The
 * GiST index on the batches' seq_id ranges finds the candidates; a batch holds at most a few thousand ids.
 */
export function walBatchJoin(s: string, o = 'o'): string {
  // The range test runs first (offset 0 keeps the planner from testing every batch's array instead); the
  // position is looked up in the few batches whose range holds the row: ~35 µs a row here.
  return `left join lateral (
      select c.at, c.partitions[c.i] as part, c.offsets[c.i] as off from (
        select b.at, b.partitions, b.offsets, array_position(b.seq_ids, ${o}.seq_id) as i
        from ${s}.outbox_wal_batch b
        where ${o}.state = 1 and ${o}.sent_at is null and int8range(b.seq_lo, b.seq_hi, '[]') @> ${o}.seq_id
        offset 0
      ) c where c.i is not null limit 1
    ) wb on true`;
}

/**
 * `walBatchJoin`, set-based, for a statement that reads many rows (reconcile's window pages, the producer
 * marks every 10 s): CTEs to place after the CTE `rows` (it needs `seq_id`, `state` and `sent_at`), giving
 * `wb` (`seq_id`, `at`, `part`, `off`) for every row a batch lists; the statement then takes
 * `walBatchSetJoin` after its rows' alias. Row at a time (`walBatchJoin`), each row's batch was found through
 * the GiST index and its position by a scan of the batch's array, so a row cost time in proportion to its
 * batch's size. Measured here (1M rows, batches of 500, a loaded 2-core machine): reconcile's window over 82,000
 * listed rows 3.5-4.2 s row at a time, 1.1-1.5 s set-based (the same rows sent in row mode: 1.2-1.5 s); the
 * producer marks over 100,000 recent rows 2.8 s, set-based 0.4-0.6 s (row mode 0.3-0.4 s). One transaction of
 * 20,000 rows listed by one batch: its window took 25 s row at a time (10,000 rows: 4 s), 0.4 s set-based.
 *
 * Here the rows still to look up (state 1 without `sent_at`) are split into runs of seq_ids (a new run past a
 * gap of more than 1,000): a window's rows are dense in seq_id but for transactions that started in it and
 * inserted much later, each of which becomes a run of its own instead of stretching one range over every batch
 * in between. Each run finds the batches overlapping it through the GiST index; those batches' ids are unnested
 * once and hash-joined to the rows. A seq_id two batches list (which the relay's record never writes) takes the
 * first batch's send.
 */
export function walBatchCtes(s: string, rows: string): string {
  return `wb_runs as (
      select min(r.seq_id) as lo, max(r.seq_id) as hi from (
        select q.seq_id, count(*) filter (where q.gap) over (order by q.seq_id) as run from (
          select x.seq_id, x.seq_id - lag(x.seq_id) over (order by x.seq_id) > 1000 as gap
          from ${rows} x where x.state = 1 and x.sent_at is null
        ) q
      ) r group by r.run
    ),
    wb as (
      select distinct on (l.seq_id) l.seq_id, b.at, l.part, l.off
      from ${s}.outbox_wal_batch b
      cross join lateral unnest(b.seq_ids, b.partitions, b.offsets) as l(seq_id, part, off)
      where b.id in (
        select c.id from wb_runs r join ${s}.outbox_wal_batch c on int8range(c.seq_lo, c.seq_hi, '[]') && int8range(r.lo, r.hi, '[]')
      )
      order by l.seq_id, b.id
    )`;
}

/** With `walBatchCtes`: adds `wb.at`, `wb.part`, `wb.off` to row `o` (all null unless a batch records its send). */
export function walBatchSetJoin(o = 'o'): string {
  return `left join wb on wb.seq_id = ${o}.seq_id and ${o}.state = 1 and ${o}.sent_at is null`;
}

/** Whether a batch records the send of row `o` (for a where clause; no join needed). */
export function recordedInBatch(s: string, o = 'o'): string {
  return `exists (
      select 1 from ${s}.outbox_wal_batch b
      where int8range(b.seq_lo, b.seq_hi, '[]') @> ${o}.seq_id and ${o}.seq_id = any(b.seq_ids)
    )`;
}

/** With `walBatchJoin` (or `walBatchSetJoin`): the row's state as readers show it (a row still in the stream is pending, 0). */
export const derivedState = (o = 'o') => `(case when ${o}.state = 1 and ${o}.sent_at is null and wb.at is null then 0 else ${o}.state end)`;
/** With `walBatchJoin`: the row is sent. */
export const derivedSent = (o = 'o') => `(${o}.state = 1 and (${o}.sent_at is not null or wb.at is not null))`;
/** With `walBatchJoin`: when, and where the broker put it. */
export const derivedSentAt = (o = 'o') => `coalesce(${o}.sent_at, wb.at)`;
export const derivedPartition = (o = 'o') => `coalesce(${o}.sent_partition, wb.part)`;
export const derivedOffset = (o = 'o') => `coalesce(${o}.sent_offset, wb.off)`;

/** Without a join: the row is sent (state 1, and recorded on the row or in a batch). */
export function sentCondition(s: string, o = 'o'): string {
  return `(${o}.state = 1 and (${o}.sent_at is not null or ${recordedInBatch(s, o)}))`;
}

/**
 * Without a join: the row was inserted for the WAL stream and no batch records it yet (still in the stream).
 * Row at a time (the GiST lookup and an array scan per row, ~17 µs): for statements that touch a few rows.
 * A statement over the whole outbox takes `inStreamRows`.
 */
export function inStreamCondition(s: string, o = 'o'): string {
  return `(${o}.state = 1 and ${o}.sent_at is null and not ${recordedInBatch(s, o)})`;
}

/**
 * What `inStreamCondition` says, set-based, for statements that scan the whole outbox (the hand-overs when a
 * slot is made or dropped, the shard-count check): every seq_id the batches list is hashed once and the outbox
 * anti-joined against it (a hash anti join, which spills to disk past work_mem rather than growing without
 * bound, as a hashed `not in` would). Row at a time, a million retained rows took 18-36 s under the drop's
 * table lock, every enqueue waiting; set-based 0.8-1.6 s (docs/wal-relay.md). Only as a term of a WHERE's
 * top-level AND: under an OR the planner cannot make it an anti join and probes the batches once per row.
 */
export function inStreamRows(s: string, o = 'o'): string {
  return `(${o}.state = 1 and ${o}.sent_at is null and not exists (
      select 1 from (select unnest(b.seq_ids) as seq_id from ${s}.outbox_wal_batch b) listed where listed.seq_id = ${o}.seq_id
    ))`;
}

/**
 * `inStreamRows` for the rows from seq_id `floor` (a parameter) up: only the batches whose seq range reaches
 * the floor are hashed (found through the GiST index on the range). `status` reads the rows above its floor
 * (the newest batches' rows, a few thousand while relays keep up) with it: one at a time they took ~35 µs
 * each, 200 ms per statement at 6,000 rows.
 */
export function inStreamRowsFrom(s: string, floor: string, o = 'o'): string {
  return `(${o}.seq_id >= ${floor}::bigint and ${o}.state = 1 and ${o}.sent_at is null and not exists (
      select 1 from (
        select unnest(b.seq_ids) as seq_id from ${s}.outbox_wal_batch b
        where int8range(b.seq_lo, b.seq_hi, '[]') && int8range(${floor}::bigint, null)
      ) listed where listed.seq_id = ${o}.seq_id
    ))`;
}

/**
 * Whether the outbox is in the insert-only mode: its `state` default is 1 (set by `relay --mode wal
 * --create-slot --insert-only`, cleared by `--drop-slot`). A catalog read, no table scan.
 */
export function insertOnlyDefault(s: string): string {
  return `coalesce((
      select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d
      join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
      where d.adrelid = '${s}.outbox'::regclass and a.attname = 'state'
    ), '0') = '1'`;
}
