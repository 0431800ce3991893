import type { Database } from '../../src/ports/sql-executor.ts';

/**
 * Wraps a real Database so a test can cut it off, as a network partition would: while cut, every query
 * and transaction rejects; `failCommits` makes transactions run their statements and then roll back.
 * Notifications keep flowing (they use the wrapped database's own listener).
 */
export function faultyDatabase(inner: Database) {
  const state = { cut: false, failCommits: false };
  const refuse = () => Promise.reject(new Error('injected fault: database unreachable'));
  const db: Database = {
    query: (sql, params) => (state.cut ? refuse() : inner.query(sql, params)),
    transaction: (fn) =>
      state.cut
        ? refuse()
        : inner.transaction(async (tx) => {
            const value = await fn(tx);
            if (state.failCommits) throw new Error('injected fault: transaction rolled back');
            return value;
          }),
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: async () => {},
  };
  return { db, state };
}
