import type { OutgoingRecord } from '../core/envelope.ts';
import { type ErrorCode, errorSummary, ZerolossError } from '../core/errors.ts';
import type { Publisher } from '../ports/transport.ts';
import { AbandonedError, type Delivery } from './delivery.ts';

/**
 * Whether an error says the database is unreachable rather than that this message is bad. Such failures are
 * waited out in place and never charged to the message's retry budget: a Postgres restart must not push
 * healthy messages to dead letters. The store adapter recognises its driver's failures and raises
 * ZL_STORE_UNAVAILABLE; here only that code is read, anywhere in the cause chain (a handler may wrap it).
 */
export function isStoreUnavailable(error: unknown): boolean {
  return storeRefusal(error) !== undefined;
}

/**
 * The database refusing everyone, not this message: away (ZL_STORE_UNAVAILABLE), or refusing the
 * certificate or the login (ZL_STORE_TLS, ZL_STORE_AUTH: a rotated password or an expired certificate
 * mid-run). All are waited out in place and reported under their own code, so healthy messages never
 * reach dead letters because of a setting; an operator fixes it and the consumer carries on.
 */
function storeRefusal(error: unknown, depth = 0): ErrorCode | undefined {
  if (error === null || typeof error !== 'object' || depth > 5) return undefined;
  const e = error as { code?: unknown; cause?: unknown };
  if (e.code === 'ZL_STORE_UNAVAILABLE' || e.code === 'ZL_STORE_TLS' || e.code === 'ZL_STORE_AUTH') return e.code;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const code = storeRefusal(inner, depth + 1);
      if (code) return code;
    }
  }
  return storeRefusal(e.cause, depth + 1);
}

/**
 * How a wait on the store (or, for steps that must not give up, on anything) is reported: the store's own
 * code when the database refused, wherever in the pipeline it was noticed, so alerts and tests can count it.
 */
export function unavailableError(what: string, error: unknown): ZerolossError {
  const code = storeRefusal(error) ?? 'ZL_TRANSPORT_UNAVAILABLE';
  return new ZerolossError(code, `${what} failed, will retry: ${errorSummary(error)}`, { retryable: true, cause: error });
}

export interface StoreRetryOptions {
  baseMs: number;
  maxMs: number;
  onError: (error: Error) => void;
}

/**
 * Runs `fn` until it succeeds, waiting out unavailability of the store (or, with `anyError`, of anything,
 * for steps that must not give up, like recording a dead letter). Waits without holding a concurrency slot;
 * gives up with AbandonedError when the delivery's signal aborts.
 */
export async function untilAvailable<T>(
  delivery: Delivery,
  what: string,
  options: StoreRetryOptions & { anyError?: boolean; isPermanent?: (error: unknown) => boolean },
  fn: () => Promise<T>,
): Promise<T> {
  let delay = options.baseMs;
  for (;;) {
    if (delivery.signal.aborted) throw new AbandonedError();
    try {
      return await fn();
    } catch (error) {
      if (error instanceof AbandonedError) throw error;
      if (options.isPermanent?.(error) || (!options.anyError && !isStoreUnavailable(error))) throw error;
      options.onError(unavailableError(what, error));
      if (!(await delivery.lane.sleep(delay, delivery.signal))) throw new AbandonedError();
      delay = Math.min(options.maxMs, delay * 2);
    }
  }
}

/**
 * Publishes one record until the broker acknowledges it, waiting out outages (the record must not be lost:
 * its source offset is not finished until this returns). A permanent rejection is thrown to the caller.
 */
export async function publishUntilAcked(
  delivery: Delivery,
  publisher: Publisher,
  record: OutgoingRecord,
  what: string,
  options: StoreRetryOptions,
): Promise<void> {
  await untilAvailable(
    delivery,
    what,
    { ...options, anyError: true, isPermanent: (e) => e instanceof ZerolossError && !e.retryable },
    async () => {
      const [outcome] = await publisher.publish([record]);
      if (outcome?.ok) return;
      throw outcome?.error ?? new ZerolossError('ZL_SEND_FAILED', 'publisher gave no outcome', { retryable: true });
    },
  );
}
