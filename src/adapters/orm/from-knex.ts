import type { Knex } from 'knex';
import { ZerolossError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { notATransaction } from './not-a-transaction.ts';
import { splitPositional, valuesInOrder } from './positional-params.ts';

/**
 * Rewrites a `$n` statement into Knex's `?` bindings: each placeholder becomes `?` with its value appended
 * (a repeated `$n` appends the value again). Knex reads every `?` in the text as a binding, even inside a
 * quoted string or a comment, and `??` as an identifier binding, so each literal `?` is escaped as `\?`,
 * which Knex turns back into `?`. zeroloss's statements hold no `?` and no backslash (a unit test checks
 * the enqueue statement); a backslash right before a `?` would not survive Knex's unescaping.
 */
export function toKnexBindings(sql: string, params: readonly unknown[]): { sql: string; bindings: unknown[] } {
  const split = splitPositional(sql);
  const escaped = split.texts.map((text) => text.replaceAll('?', '\\?'));
  return { sql: escaped.join('?'), bindings: valuesInOrder(split, params, 'fromKnex') };
}

/**
 * A Knex transaction (`knex.transaction(async (trx) => …)`) as the SqlExecutor `outbox.enqueue` writes
 * through, with Knex's `pg` client: `trx.raw(sql, bindings)` hands the values to node-postgres as they are
 * (a Buffer stays bytea), and its result is node-postgres's `{ rows }`. The root `knex` (`isTransaction`
 * unset) is refused.
 */
export function fromKnex(trx: Pick<Knex, 'raw'>): SqlExecutor {
  if ((trx as { isTransaction?: unknown } | undefined)?.isTransaction !== true) {
    throw notATransaction('fromKnex', 'knex.transaction(async (trx) => …)');
  }
  return {
    async query<R>(sql: string, params: unknown[] = []) {
      const { sql: text, bindings } = toKnexBindings(sql, params);
      const result = (await trx.raw(text, bindings as Knex.RawBinding[])) as { rows?: R[] };
      if (!Array.isArray(result?.rows)) {
        throw new ZerolossError('ZL_INVALID_CONFIG', "fromKnex needs a Knex on Postgres (client 'pg'): its raw() result had no rows", {
          details: { field: 'trx' },
        });
      }
      return { rows: result.rows };
    },
  };
}
