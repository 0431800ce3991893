import { ZerolossError } from '../../core/errors.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { LockBusyError } from './guard-errors.ts';
import { TRY_BUSINESS_LOCK_SQL } from './guard-sql.ts';

export interface OnceUnderLockOptions<T> {
  /** Names the business operation (e.g. `deduct:order-42`): copies of one operation share it. */
  lockKey: string;
  /** How long to try for the lock before giving up with LockBusyError (retryable); default 3,000 ms. */
  timeoutMs?: number;
  /** Whether the operation was applied already (the idempotency check), read in the same transaction. */
  isDone: (tx: SqlExecutor) => Promise<boolean>;
  /** Applies the operation; runs at most once per operation across concurrent copies. */
  apply: (tx: SqlExecutor) => Promise<T>;
  /** Stops trying for the lock early (a handler passes `ctx.signal`). */
  signal?: AbortSignal;
}

export type OnceUnderLockResult<T> = { applied: true; value: T } | { applied: false };

/**
 * Lock discipline for a business operation that two copies may run at once (two messages for one order,
 * two consumer groups, a resend racing the original) where no unique index can say "done": check, take the
 * operation's lock with a bound, check again, apply. Inside the caller's transaction (`ctx.tx`), so the
 * lock is held until its commit and the next holder's second check sees the first holder's committed
 * effect (Read Committed: each statement reads the latest commits).
 *
 * The first check spares the lock when the work is plainly done; the second is the one that counts: the
 * copy that waited for the lock finds the work its rival committed meanwhile. Not getting the lock within
 * `timeoutMs` throws LockBusyError (ZL_LOCK_BUSY, retryable): "try again later", which the consumer's retry
 * policy does, never "go ahead without it".
 */
export async function onceUnderLock<T>(tx: SqlExecutor, options: OnceUnderLockOptions<T>): Promise<OnceUnderLockResult<T>> {
  const timeoutMs = options.timeoutMs ?? 3_000;
  if (typeof options.lockKey !== 'string' || options.lockKey.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'onceUnderLock needs a non-empty lockKey');
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'onceUnderLock timeoutMs must be >= 0');
  if (await options.isDone(tx)) return { applied: false };
  await tryLock(tx, options.lockKey, timeoutMs, options.signal);
  if (await options.isDone(tx)) return { applied: false };
  return { applied: true, value: await options.apply(tx) };
}

/**
 * Polls the non-blocking lock with growing pauses until the deadline. Polling rather than a blocking lock
 * under `lock_timeout`: a timed-out statement aborts the caller's whole transaction, a refused try does not.
 */
async function tryLock(tx: SqlExecutor, key: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let pause = 5;
  for (;;) {
    const { rows } = await tx.query<{ locked: boolean }>(TRY_BUSINESS_LOCK_SQL, [key]);
    if (rows[0]?.locked === true) return;
    const left = deadline - performance.now();
    if (left <= 0 || signal?.aborted) throw new LockBusyError(key, timeoutMs);
    await pauseFor(Math.min(pause, left), signal);
    pause = Math.min(200, pause * 2);
  }
}

function pauseFor(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
