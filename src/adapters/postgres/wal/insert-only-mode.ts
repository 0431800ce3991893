import { ZerolossError } from '../../../core/errors.ts';
import type { SqlExecutor } from '../../../ports/sql-executor.ts';
import type { walSql } from './wal-sql.ts';

type WalSql = ReturnType<typeof walSql>;

/**
 * The outbox's insert-only mode (docs/wal-relay.md), switched the same way for the single slot
 * (postgres-wal.ts) and for shards (postgres-wal-shards.ts). Both switches run last in the transaction that
 * makes or drops the slots: the ALTER's lock holds enqueues back until that commit. Also the wait for the
 * outbox's writers that a slot's hand-over needs (`awaitOutboxWriters`): the same lock timeout, the same error.
 */
export async function insertOnlyOn(on: SqlExecutor, sql: WalSql): Promise<boolean> {
  return (await on.query<{ on: boolean }>(sql.insertOnlyOn)).rows[0]?.on === true;
}

/**
 * Who may read the slots while the mode is switched on: `slots` (every slot of the outbox), whose creation
 * locks (wal-sql.ts slotCreationLock) the caller took first in the transaction; `refuse` makes the error
 * naming the slots read.
 */
export interface SwitchReaders {
  slots: string[];
  refuse(read: string[]): ZerolossError;
}

/**
 * Switches the mode on when `want` and it is off (not again when on: the ALTER would wait for every
 * enqueue in flight for nothing), then keeps the slots' records under the mode's name, so relays of a
 * release before it find none and stand by. Resolves to whether the mode is on.
 *
 * A relay reading a slot now may be of a release before the mode (the records' renaming stops those only
 * when they open a slot): the switch is refused while one of `readers.slots` is read, looked at under the
 * slots' creation locks, which make a relay that tries to open a slot meanwhile stand by (its check of the
 * lock fails) until this commits, and then find no record under the old name. Looked at again after the
 * ALTER, which may wait up to the lock timeout: a relay that passed its checks just before the locks were
 * taken has started by then. One that passed them before and starts only after that second look is not
 * seen (the gap left: relays take no lock across their check and START_REPLICATION).
 */
export async function applyInsertOnly(tx: SqlExecutor, sql: WalSql, want: boolean | undefined, readers: SwitchReaders): Promise<boolean> {
  if (want === true && !(await insertOnlyOn(tx, sql))) {
    await refuseWhileRead(tx, sql, readers);
    await alterOutbox(tx, sql, 1, 'switching the outbox to the insert-only mode');
    await refuseWhileRead(tx, sql, readers);
  }
  const on = await insertOnlyOn(tx, sql);
  await tx.query(sql.markSlots, [on]);
  return on;
}

async function refuseWhileRead(tx: SqlExecutor, sql: WalSql, readers: SwitchReaders): Promise<void> {
  const { rows } = await tx.query<{ slot_name: string }>(sql.slotsRead, [readers.slots]);
  if (rows.length > 0) throw readers.refuse(rows.map((r) => r.slot_name));
}

/** Leaves the mode with the last slot: new rows go to the polling path, and so do those still in the stream. */
export async function leaveInsertOnly(tx: SqlExecutor, sql: WalSql, actor: string): Promise<void> {
  await alterOutbox(tx, sql, 0, 'leaving the insert-only mode');
  await tx.query(sql.handOverInStream, [actor]);
}

/**
 * Between a slot's creation and its hand-over (same transaction, read committed): waits until every
 * transaction writing to the outbox at this moment is visible or gone, so the hand-over's fresh snapshot
 * sees each enqueue whose commit record lies before the slot's consistent point (wal-sql.ts
 * `lockOutboxWriters`). Waits at most the lock timeout, and holds enqueues back only while it waits.
 */
export async function awaitOutboxWriters(tx: SqlExecutor, sql: WalSql): Promise<void> {
  await tx.query(sql.writersSavepoint);
  await tx.query(sql.lockTimeout);
  await withinLockTimeout(
    () => tx.query(sql.lockOutboxWriters),
    sql,
    "creating the WAL slot waited %s for the outbox's table lock (so that its hand-over sees every enqueue committed before " +
      'the slot) and gave up (nothing was changed: the slot is dropped again): a transaction that wrote to the outbox is ' +
      'still open or still committing (pg_stat_activity: state "idle in transaction", a long query, or wait_event ' +
      '"SyncRep": waiting for a synchronous standby), or a VACUUM or CREATE INDEX CONCURRENTLY runs on it; run it again once that ends',
  );
  await tx.query(sql.releaseOutboxWriters);
}

/**
 * The ALTER takes the outbox's strongest lock, so it waits for every transaction that touched the outbox,
 * and every enqueue waits behind it: it gives up after the lock timeout (wal-sql.ts) rather than stall the
 * application, and says which long transaction to look for instead of the driver's bare "lock timeout".
 */
async function alterOutbox(tx: SqlExecutor, sql: WalSql, stateDefault: 0 | 1, what: string): Promise<void> {
  await tx.query(sql.lockTimeout);
  await withinLockTimeout(
    () => tx.query(sql.setStateDefault(stateDefault)),
    sql,
    `${what} waited %s for the outbox's table lock and gave up (nothing was changed): a transaction that ` +
      'touched the outbox is still open (pg_stat_activity, state "idle in transaction" or a long query); run it again once that ends',
  );
}

/** Runs `statement`; a lock timeout becomes `message` (its %s: the timeout), retryable, with the sqlstate. */
async function withinLockTimeout(statement: () => Promise<unknown>, sql: WalSql, message: string): Promise<void> {
  try {
    await statement();
  } catch (error) {
    const details = (error as ZerolossError).details as { sqlstate?: unknown } | undefined;
    if (details?.sqlstate !== '55P03') throw error;
    throw new ZerolossError('ZL_STORE_CONFLICT', message.replace('%s', sql.lockTimeoutText), {
      retryable: true,
      details: { sqlstate: '55P03' },
      cause: error,
    });
  }
}
