import type { PGlite, Transaction } from '@electric-sql/pglite';
import { quoteIdent } from '../../core/identifier.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { classifyPostgresError } from './postgres-errors.ts';

/**
 * Database port over an in-process PGlite. PGlite is one connection: its own `transaction()` serialises
 * access, so zeroloss never issues a bare BEGIN on it. Failed statements reject as classifyPostgresError
 * says, as with node-postgres.
 */
export function pgliteDatabase(db: PGlite, options: { closeOnClose?: boolean } = {}): Database {
  return {
    query: (sql, params) => pgliteExecutor(db).query(sql, params),
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      try {
        return await db.transaction((tx) => fn(pgliteExecutor(tx)));
      } catch (error) {
        // PGlite's own COMMIT of an aborted transaction (a failed statement whose error fn caught) rejects
        // with 25P02; classified like node-postgres's, so callers see ZL_TRANSACTION_ROLLED_BACK on both.
        throw classifyPostgresError(error);
      }
    },
    async listen(channel, onNotify) {
      quoteIdent(channel, 'channel');
      return db.listen(channel, (payload) => onNotify(payload ?? ''));
    },
    async close() {
      if (options.closeOnClose) await db.close();
    },
  };
}

/** Wraps a PGlite transaction (or the PGlite itself) as the SqlExecutor that `outbox.enqueue` takes. */
export function pgliteExecutor(tx: Transaction | PGlite): SqlExecutor {
  return {
    async query<R>(sql: string, params?: unknown[]) {
      try {
        const result = await tx.query<R>(sql, params);
        return { rows: result.rows };
      } catch (error) {
        throw classifyPostgresError(error);
      }
    },
  };
}
