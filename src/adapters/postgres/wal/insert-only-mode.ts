import type { SqlExecutor } from '../../../ports/sql-executor.ts';
import type { walSql } from './wal-sql.ts';

type WalSql = ReturnType<typeof walSql>;

/**
 * The outbox's insert-only mode (docs/wal-relay.md), switched the same way for the single slot
 * (postgres-wal.ts) and for shards (postgres-wal-shards.ts). Both switches run last in the transaction that
 * makes or drops the slots: the ALTER's lock holds enqueues back until that commit.
 */
export async function insertOnlyOn(on: SqlExecutor, sql: WalSql): Promise<boolean> {
  return (await on.query<{ on: boolean }>(sql.insertOnlyOn)).rows[0]?.on === true;
}

/**
 * Switches the mode on when `want` and it is off (not again when on: the ALTER would wait for every
 * enqueue in flight for nothing), then keeps the slots' records under the mode's name, so relays of a
 * release before it find none and stand by. Resolves to whether the mode is on.
 */
export async function applyInsertOnly(tx: SqlExecutor, sql: WalSql, want: boolean | undefined): Promise<boolean> {
  if (want === true && !(await insertOnlyOn(tx, sql))) {
    await tx.query(sql.lockTimeout);
    await tx.query(sql.setStateDefault(1));
  }
  const on = await insertOnlyOn(tx, sql);
  await tx.query(sql.markSlots, [on]);
  return on;
}

/** Leaves the mode with the last slot: new rows go to the polling path, and so do those still in the stream. */
export async function leaveInsertOnly(tx: SqlExecutor, sql: WalSql, actor: string): Promise<void> {
  await tx.query(sql.lockTimeout);
  await tx.query(sql.setStateDefault(0));
  await tx.query(sql.handOverInStream, [actor]);
}
