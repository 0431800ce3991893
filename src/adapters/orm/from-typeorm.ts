import type { EntityManager, QueryRunner } from 'typeorm';
import { ZerolossError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { notATransaction } from './not-a-transaction.ts';

/**
 * A TypeORM transaction as the SqlExecutor `outbox.enqueue` writes through: the EntityManager that
 * `dataSource.transaction(async (manager) => …)` hands you, or a QueryRunner after `startTransaction()`.
 * Statements run on its query runner with the structured result (`records` are node-postgres's rows): the
 * plain `query()` returns `[rows, count]` for an UPDATE, and a manager without a query runner would take
 * any pooled connection, outside the caller's transaction.
 */
export function fromTypeorm(managerOrRunner: EntityManager | QueryRunner): SqlExecutor {
  const runner = isQueryRunner(managerOrRunner) ? managerOrRunner : managerOrRunner?.queryRunner;
  if (runner === undefined || typeof runner.query !== 'function') {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'fromTypeorm needs the EntityManager of a transaction (dataSource.transaction(async (manager) => …)) or a QueryRunner',
      { details: { field: 'manager' } },
    );
  }
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      // Asked at each statement: a query runner may be wrapped before its startTransaction(), and one
      // that committed (or never started) would run the statement on its own.
      if (!runner.isTransactionActive) {
        throw notATransaction('fromTypeorm', 'dataSource.transaction(async (manager) => …), or a QueryRunner after startTransaction()');
      }
      const result = await runner.query(sql, params, true);
      return { rows: result.records as R[] };
    },
  };
}

function isQueryRunner(value: EntityManager | QueryRunner): value is QueryRunner {
  return typeof (value as QueryRunner | null)?.startTransaction === 'function';
}
