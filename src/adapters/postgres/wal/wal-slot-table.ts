import { ZerolossError } from '../../../core/errors.ts';
import type { SqlExecutor } from '../../../ports/sql-executor.ts';

/**
 * `wal_slot` (migration 20) records each slot's committed hand-over. A schema migrated before it has no
 * such table: readers then fall back to what the code did before it (`isUndefinedTable`), removals have
 * nothing to forget (`ignoreUndefinedTable`), and creating a slot is refused (`requireSlotTable`).
 */
export function isUndefinedTable(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '42P01';
}

/** For `.catch` on a statement on a table a schema before its migration lacks: nothing there to change. */
export function ignoreUndefinedTable(error: unknown): void {
  if (!isUndefinedTable(error)) throw error;
}

/** Slot creation records its hand-over; refused, saying what to do, on a schema without `wal_slot`. */
export async function requireSlotTable(db: SqlExecutor, s: string, schema: string): Promise<void> {
  const { rows } = await db.query<{ ok: boolean }>('select to_regclass($1) is not null as ok', [`${s}.wal_slot`]);
  if (rows[0]?.ok !== true) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `schema ${schema} predates migration 20 (wal_slot): run \`zeroloss migrate\` first`, {
      details: { field: 'schema' },
    });
  }
  // The hand-over reads outbox_wal_batch (migration 21), where the insert-only mode records sends.
  const { rows: batch } = await db.query<{ ok: boolean }>('select to_regclass($1) is not null as ok', [`${s}.outbox_wal_batch`]);
  if (batch[0]?.ok !== true) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `schema ${schema} predates migration 21 (outbox_wal_batch): run \`zeroloss migrate\` first`,
      {
        details: { field: 'schema' },
      },
    );
  }
}
