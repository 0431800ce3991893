import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { notATransaction } from './not-a-transaction.ts';

/** The one method of a Prisma interactive-transaction client (`prisma.$transaction(async (tx) => …)`) used here. */
export interface PrismaRawExecutor {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>;
}

/**
 * A Prisma 7 interactive transaction as the SqlExecutor `outbox.enqueue` writes through. Runs
 * `tx.$queryRawUnsafe(sql, ...params)`: Postgres `$n` placeholders are what Prisma's raw queries take, and
 * with `@prisma/adapter-pg` the values reach node-postgres as Prisma types them (a Buffer as bytes, a string
 * as text; zeroloss casts where it needs another type, `$7::jsonb`). Rows come back as objects (bigint
 * columns as BigInt, which zeroloss reads with Number()).
 *
 * The interactive transaction's client has no `$connect` (Prisma leaves it out): the root `PrismaClient`
 * has, and is refused.
 */
export function fromPrisma(tx: PrismaRawExecutor): SqlExecutor {
  if (tx === null || typeof tx !== 'object' || typeof (tx as { $connect?: unknown }).$connect === 'function') {
    throw notATransaction('fromPrisma', 'prisma.$transaction(async (tx) => …)');
  }
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      const rows = await tx.$queryRawUnsafe<R[]>(sql, ...params);
      return { rows: [...rows] };
    },
  };
}
