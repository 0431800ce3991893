import type { ReadinessCheck } from '../ports/readiness.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';

/** `select 1` through the given executor: the database answers at all. */
export function databaseCheck(db: SqlExecutor): ReadinessCheck {
  return async () => {
    await db.query('select 1');
    return { ok: true };
  };
}
