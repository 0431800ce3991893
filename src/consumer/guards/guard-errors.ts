import { ZerolossError } from '../../core/errors.ts';

/**
 * A version-guarded update found the row at another version than the message expected (or found no row).
 * Not retryable: rerunning the same message against the same row gives the same answer, so a handler that
 * does not catch it sends the message to dead letters with this code and both versions in its text.
 *
 * `rowBehind` tells the two cases apart, so a handler can route them: the row is behind the message (no row,
 * or an older version: a predecessor has not landed yet, which `NotYetError` holds for) or ahead of it (a
 * newer write already landed: this message is stale and can be dropped).
 */
export class StaleVersionError extends ZerolossError {
  readonly table: string;
  readonly expected: number;
  /** The row's version now; null when there is no row under the key. */
  readonly actual: number | null;

  constructor(table: string, key: unknown, expected: number, actual: number | null) {
    const found = actual === null ? 'no row' : `version ${actual}`;
    super('ZL_STALE_VERSION', `${table} ${JSON.stringify(key)}: expected version ${expected}, found ${found}`, {
      retryable: false,
      details: { table, key, expected, actual },
    });
    this.table = table;
    this.expected = expected;
    this.actual = actual;
  }

  /** True when the row has not reached the expected version yet (or does not exist): the message is early. */
  get rowBehind(): boolean {
    return this.actual === null || this.actual < this.expected;
  }
}

/**
 * Thrown by a handler whose message arrived ahead of a predecessor it builds on ("paid" before the order
 * exists). The consumer's hold stage rolls the attempt back, keeps the message in its key's lane and runs
 * it again with backoff, up to the type's `hold.maxMs`, without charging its retry policy; past that, the
 * message is dead-lettered as ZL_HOLD_EXPIRED with this error's text as the reason. Outside a consumer it
 * is an ordinary retryable error.
 */
export class NotYetError extends ZerolossError {
  constructor(reason: string, options: { details?: Record<string, unknown> } = {}) {
    super('ZL_NOT_YET', reason, { retryable: true, details: options.details ?? {} });
  }
}

/** A message held for its predecessor longer than its type's `hold.maxMs`: it goes to dead letters. */
export class HoldExpiredError extends ZerolossError {
  constructor(heldMs: number, checks: number, cause: NotYetError) {
    super(
      'ZL_HOLD_EXPIRED',
      `held ${(heldMs / 1000).toFixed(1)} s (${checks} checks) for a predecessor that did not land: ${cause.message}`,
      {
        retryable: false,
        cause,
        details: { ...cause.details, heldMs, checks },
      },
    );
  }
}

/**
 * The business lock was not taken within its bound: another copy of the same operation holds it. Retryable
 * ("try again later"): by the next attempt the holder has finished, and the second idempotency check then
 * finds its work done.
 */
export class LockBusyError extends ZerolossError {
  constructor(lockKey: string, timeoutMs: number) {
    super('ZL_LOCK_BUSY', `business lock ${JSON.stringify(lockKey)} still held by another transaction after ${timeoutMs} ms`, {
      retryable: true,
      details: { lockKey, timeoutMs },
    });
  }
}
