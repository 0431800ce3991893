import { ZerolossError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { StaleVersionError } from './guard-errors.ts';
import { columnNames, type TableRef, tableName, versionedUpdateSql, versionReadSql } from './guard-sql.ts';

export interface VersionGuardOptions extends TableRef {
  /** The key column(s) naming one row. */
  key: string | readonly string[];
  /** The optimistic-lock column, an integer; default `version`. */
  versionColumn?: string;
}

export interface GuardedUpdate {
  /** The key value, or one value per key column, in declared order. */
  key: unknown;
  /** The version the message was written against (what the row must still hold). */
  expected: number;
  /** The version the row moves to; default `expected + 1`. */
  next?: number;
  /** Columns to change, by name. */
  set: Record<string, unknown>;
}

export interface VersionGuard {
  /**
   * Updates the row only if its version column still holds `expected`, moving it to `next`, inside the
   * caller's transaction (`ctx.tx` in a handler). Resolves to the new version; throws StaleVersionError
   * (ZL_STALE_VERSION, not retryable) when the row is at another version or missing. The refusal changes
   * nothing and leaves the transaction usable, so a handler may catch it and go on.
   */
  update(tx: SqlExecutor, update: GuardedUpdate): Promise<number>;
}

/**
 * The last guard of per-key order: an optimistic-lock version column on the business row. Whatever order
 * messages arrive in, and however many copies, a write applies only on top of the version it was made
 * for. The names are validated once, here.
 */
export function versionGuard(options: VersionGuardOptions): VersionGuard {
  const table = tableName(options);
  const keys = columnNames(typeof options.key === 'string' ? [options.key] : options.key, 'key column');
  if (keys.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'versionGuard needs at least one key column');
  const version = columnNames([options.versionColumn ?? 'version'], 'version column')[0] as string;
  const read = versionReadSql(table, keys, version);
  return {
    async update(tx, update) {
      const keyValues = keyValuesOf(update.key, keys.length);
      const { expected } = update;
      const next = update.next ?? expected + 1;
      if (!Number.isSafeInteger(expected) || !Number.isSafeInteger(next) || next <= expected) {
        throw new ZerolossError(
          'ZL_INVALID_PAYLOAD',
          `guarded update of ${options.table}: versions must be integers with next > expected`,
          {
            details: { expected, next },
          },
        );
      }
      const names = Object.keys(update.set);
      const set = columnNames(names);
      if (set.includes(version))
        throw new ZerolossError('ZL_INVALID_CONFIG', `guarded update of ${options.table} must not set its version column`);
      const sql = versionedUpdateSql(table, keys, version, set);
      const { rows } = await tx.query<{ version: number | string }>(sql, [
        ...names.map((n) => update.set[n]),
        next,
        ...keyValues,
        expected,
      ]);
      if (rows[0] !== undefined) return Number(rows[0].version);
      const found = await tx.query<{ version: number | string | null }>(read, keyValues);
      const actual = found.rows[0]?.version;
      throw new StaleVersionError(options.table, update.key, expected, actual === undefined || actual === null ? null : Number(actual));
    },
  };
}

/** One value per key column; a single column takes its value as it is. */
export function keyValuesOf(key: unknown, columns: number): unknown[] {
  if (columns === 1) return [key];
  if (!Array.isArray(key) || key.length !== columns) {
    throw new ZerolossError('ZL_INVALID_PAYLOAD', `a key of ${columns} columns needs an array of ${columns} values`);
  }
  return key;
}
