import type { SQL } from 'drizzle-orm';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { drizzle } from './drizzle-driver.ts';
import { notATransaction } from './not-a-transaction.ts';
import { splitPositional, valuesInOrder } from './positional-params.ts';

/** A Drizzle database or transaction on Postgres: node-postgres, postgres.js, PGlite and the like. */
export interface DrizzleExecutor {
  execute(query: SQL): PromiseLike<unknown>;
}

/**
 * A Drizzle transaction (`db.transaction(async (tx) => …)`) as the SqlExecutor `outbox.enqueue` writes
 * through. Drizzle numbers parameters itself, so the statement is cut at its `$n` (positional-params.ts)
 * and rebuilt as raw text with one `sql.param` per placeholder; a repeated `$n` becomes a second parameter
 * with the same value. Each value goes to the driver as given (`sql.param`, no encoder: an array stays one
 * value, not a list). The result is node-postgres's `{ rows }` or postgres.js's row array; both are read.
 */
export function fromDrizzle(tx: DrizzleExecutor): SqlExecutor {
  // Drizzle's transactions (PgTransaction, every driver's) have rollback(); its databases do not.
  if (typeof (tx as { rollback?: unknown } | undefined)?.rollback !== 'function') {
    throw notATransaction('fromDrizzle', 'db.transaction(async (tx) => …)');
  }
  return {
    async query<R>(text: string, params: unknown[] = []) {
      const split = splitPositional(text);
      const values = valuesInOrder(split, params, 'fromDrizzle');
      const chunks: SQL[] = [];
      for (const [i, piece] of split.texts.entries()) {
        if (i > 0) chunks.push(drizzle.sql`${drizzle.sql.param(values[i - 1])}`);
        if (piece !== '') chunks.push(drizzle.sql.raw(piece));
      }
      const result = (await tx.execute(drizzle.sql.join(chunks))) as { rows?: R[] } | R[];
      return { rows: Array.isArray(result) ? [...result] : [...(result.rows ?? [])] };
    },
  };
}
