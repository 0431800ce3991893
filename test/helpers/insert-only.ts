import type pg from 'pg';

/**
 * Test helpers for the WAL relay's insert-only mode (migration 21, src/adapters/postgres/stream-sent-sql.ts)
 * without a slot: `insertOnly` switches the outbox's state default to 1 as `--create-slot --insert-only`
 * does, and `recordBatch` writes a batch row as the relay's ledger does after the broker confirmed.
 */
export async function insertOnly(pool: pg.Pool, schema: string, on = true): Promise<void> {
  await pool.query(`alter table "${schema}".outbox alter column state set default ${on ? 1 : 0}`);
}

export async function recordBatch(
  pool: pg.Pool,
  schema: string,
  rows: Array<{ seqId: string | number | bigint; partition: number; offset: number | bigint }>,
  options: { slot?: string; endLsn?: string | null } = {},
): Promise<void> {
  const ids = rows.map((r) => String(r.seqId));
  await pool.query(
    `insert into "${schema}".outbox_wal_batch (slot, end_lsn, seq_lo, seq_hi, seq_ids, partitions, offsets)
     select $1, $2::pg_lsn, min(x), max(x), $3::bigint[], $4::int[], $5::bigint[] from unnest($3::bigint[]) x`,
    [options.slot ?? 'test_slot', options.endLsn ?? null, ids, rows.map((r) => r.partition), rows.map((r) => String(r.offset))],
  );
}
