import type { Kysely } from 'kysely';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { kysely } from './kysely-driver.ts';

/**
 * A Kysely transaction (`db.transaction().execute(async (trx) => …)`) as the SqlExecutor `outbox.enqueue`
 * writes through. The statement goes to the dialect's driver as written, `$n` placeholders and values
 * untouched, so on PostgresDialect (node-postgres) the row is the one a `pg` client would write.
 * A Kysely that is not a transaction works too, but then each statement commits on its own.
 */
export function fromKysely(trx: Pick<Kysely<unknown>, 'executeQuery'>): SqlExecutor {
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      const result = await trx.executeQuery<R>(kysely.CompiledQuery.raw(sql, params));
      return { rows: [...result.rows] };
    },
  };
}
