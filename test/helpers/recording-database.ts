import type { Database } from '../../src/ports/sql-executor.ts';

export interface RanStatement {
  sql: string;
  params: unknown[];
}

/**
 * Wraps a real Database and records every statement run on it outside a transaction, with its parameters, in
 * `ran` (clear it with `ran.length = 0`): for tests that count or EXPLAIN what a store ran.
 */
export function recordingDatabase(inner: Database): { db: Database; ran: RanStatement[] } {
  const ran: RanStatement[] = [];
  const db: Database = {
    query: (sql, params) => {
      ran.push({ sql, params: params ?? [] });
      return inner.query(sql, params);
    },
    transaction: (fn) => inner.transaction(fn),
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
  return { db, ran };
}
