import type { Database, SqlExecutor } from '../src/ports/sql-executor.ts';

/**
 * TEST-ONLY broken build of the embedded host's handler (`--broken effect-outside-transaction` with
 * `embedded-host-kill`): the handler only queues the effect, and the effect commits in a transaction of its
 * own once the handler's transaction (the inbox row) has committed. On PGlite, a single connection, the
 * effect cannot be written beside the open inbox transaction, so "outside" means after it: the mistake
 * "acknowledge first, do the work in the background". A host killed between the two commits leaves
 * messages marked processed with no effect, and the checker must count them as lost.
 */
export function effectAfterInboxCommit<M>(db: Database, apply: (tx: SqlExecutor, message: M) => Promise<void>): (message: M) => void {
  let queue = Promise.resolve();
  return (message) => {
    queue = queue.then(() => db.transaction((tx) => apply(tx, message))).catch(() => {});
  };
}
