import { ZerolossError } from '../../../core/errors.ts';
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
    await alterOutbox(tx, sql, 1, 'switching the outbox to the insert-only mode');
  }
  const on = await insertOnlyOn(tx, sql);
  await tx.query(sql.markSlots, [on]);
  return on;
}

/** Leaves the mode with the last slot: new rows go to the polling path, and so do those still in the stream. */
export async function leaveInsertOnly(tx: SqlExecutor, sql: WalSql, actor: string): Promise<void> {
  await alterOutbox(tx, sql, 0, 'leaving the insert-only mode');
  await tx.query(sql.handOverInStream, [actor]);
}

/**
 * The ALTER takes the outbox's strongest lock, so it waits for every transaction that touched the outbox,
 * and every enqueue waits behind it: it gives up after the lock timeout (wal-sql.ts) rather than stall the
 * application, and says which long transaction to look for instead of the driver's bare "lock timeout".
 */
async function alterOutbox(tx: SqlExecutor, sql: WalSql, stateDefault: 0 | 1, what: string): Promise<void> {
  await tx.query(sql.lockTimeout);
  try {
    await tx.query(sql.setStateDefault(stateDefault));
  } catch (error) {
    const details = (error as ZerolossError).details as { sqlstate?: unknown } | undefined;
    if (details?.sqlstate !== '55P03') throw error;
    throw new ZerolossError(
      'ZL_STORE_CONFLICT',
      `${what} waited ${sql.lockTimeoutText} for the outbox's table lock and gave up (nothing was changed): a transaction that ` +
        'touched the outbox is still open (pg_stat_activity, state "idle in transaction" or a long query); run it again once that ends',
      { retryable: true, details: { sqlstate: '55P03' }, cause: error },
    );
  }
}
