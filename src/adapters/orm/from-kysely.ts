import type { Kysely } from 'kysely';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { kysely } from './kysely-driver.ts';
import { notATransaction } from './not-a-transaction.ts';

/**
 * A Kysely transaction (`db.transaction().execute(async (trx) => …)`) as the SqlExecutor `outbox.enqueue`
 * writes through. The statement goes to the dialect's driver as written, `$n` placeholders and values
 * untouched, so on PostgresDialect (node-postgres) the row is the one a `pg` client would write.
 * A Kysely that is not a transaction (`isTransaction` false: the root `db`) is refused.
 */
export function fromKysely(trx: Pick<Kysely<unknown>, 'executeQuery' | 'isTransaction'>): SqlExecutor {
  if (trx?.isTransaction !== true) throw notATransaction('fromKysely', 'db.transaction().execute(async (trx) => …)');
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      const result = await trx.executeQuery<R>(kysely.CompiledQuery.raw(sql, params));
      return { rows: [...result.rows] };
    },
  };
}
