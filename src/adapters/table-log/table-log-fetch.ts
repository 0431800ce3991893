import type { IncomingRecord } from '../../core/envelope.ts';
import type { Database } from '../../ports/sql-executor.ts';
import type { TableLogSql } from './table-log-sql.ts';

interface FetchedRow {
  topic: string;
  partition: number;
  log_offset: string;
  msg_key: string;
  headers: Record<string, string> | string;
  value: Uint8Array;
  ts: number;
}

/**
 * One round trip for every partition a member delivers: up to `maxBatchRecords` records (and about
 * `maxBatchBytes`) from each position on. Returns one batch per partition, keyed `topic\0partition`,
 * records in offset order.
 */
export async function fetchBatches(
  db: Database,
  sql: TableLogSql,
  positions: Array<{ topic: string; partition: number; position: bigint }>,
  limits: { maxBatchRecords: number; maxBatchBytes: number },
): Promise<Map<string, IncomingRecord[]>> {
  const { rows } = await db.query<FetchedRow>(sql.fetch, [
    positions.map((p) => p.topic),
    positions.map((p) => p.partition),
    positions.map((p) => p.position.toString()),
    limits.maxBatchRecords,
    limits.maxBatchBytes,
  ]);
  const batches = new Map<string, IncomingRecord[]>();
  for (const row of rows) {
    const record = toRecord(row);
    const slot = `${record.topic}\u0000${record.partition}`;
    const batch = batches.get(slot);
    if (batch) batch.push(record);
    else batches.set(slot, [record]);
  }
  return batches;
}

/** bytea comes back as a Buffer from pg and a Uint8Array from PGlite; both become a Buffer without a copy. */
function toRecord(row: FetchedRow): IncomingRecord {
  const value = Buffer.isBuffer(row.value) ? row.value : Buffer.from(row.value.buffer, row.value.byteOffset, row.value.byteLength);
  const headers = typeof row.headers === 'string' ? (JSON.parse(row.headers) as Record<string, string>) : row.headers;
  return {
    topic: row.topic,
    partition: Number(row.partition),
    offset: BigInt(row.log_offset),
    key: row.msg_key,
    value,
    headers,
    timestamp: Number(row.ts),
  };
}
