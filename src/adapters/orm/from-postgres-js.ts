import type { Sql } from 'postgres';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { notATransaction } from './not-a-transaction.ts';

/** Postgres's `unknown` type: a parameter declared with it has its type inferred by the server, as with oid 0. */
const UNKNOWN_OID = 705;

/**
 * A postgres.js transaction (the `sql` that `sql.begin(async (sql) => …)` hands you) as the SqlExecutor
 * `outbox.enqueue` writes through. Runs `sql.unsafe(text, params)`: postgres.js reads `$n` itself.
 *
 * Strings go as `unknown`, sent verbatim. Left untyped, postgres.js asks the server for the parameter's type
 * and serializes by it: zeroloss's headers (a JSON string cast `$7::jsonb`) were then JSON-encoded a second
 * time and stored as a JSON string, not an object. Declared `unknown`, the server still infers the type
 * (exactly what node-postgres gets) and postgres.js sends the text as it is. Buffers (bytea) and booleans
 * postgres.js types by itself.
 *
 * Only the transaction's `sql` has `savepoint`: the root `sql` (and a `reserve()`d connection) is refused.
 */
export function fromPostgresJs(sql: Pick<Sql, 'unsafe' | 'typed'>): SqlExecutor {
  if (typeof (sql as { savepoint?: unknown } | undefined)?.savepoint !== 'function') {
    throw notATransaction('fromPostgresJs', 'sql.begin(async (sql) => …)');
  }
  return {
    async query<R>(text: string, params: unknown[] = []) {
      const values = params.map((value) => (typeof value === 'string' ? sql.typed(value as never, UNKNOWN_OID) : value));
      const rows = await sql.unsafe(text, values as never[]);
      return { rows: [...rows] as R[] };
    },
  };
}
