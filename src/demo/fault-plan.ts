import { createHash } from 'node:crypto';
import { PermanentError, RetryableError } from '../core/errors.ts';
import type { Handler } from '../consumer/handler-registry.ts';

/** Shares of messages whose handler the demo makes fail. */
export interface FaultRates {
  /** Fail with a PermanentError: dead-lettered at the first attempt. */
  permanent: number;
  /** Fail one attempt more than the type's retry policy allows: dead-lettered when retries run out. */
  beyondPolicy: number;
  /** Fail 1..maxRetries attempts, then succeed. */
  transient: number;
}

export interface PlannedFault {
  /** Attempts that fail before one succeeds (0: none). */
  failures: number;
  permanent: boolean;
}

/**
 * The demo's fault plan: a pure function of (seed, business id), so the consumer processes that inject
 * the faults and the audit that predicts the dead letters agree without sharing any state.
 */
export function plannedFault(seed: number, id: string, maxRetries: number, rates: FaultRates): PlannedFault {
  const digest = createHash('sha256').update(`${seed}:${id}`).digest();
  const u = digest.readUInt32BE(0) / 2 ** 32;
  const v = digest.readUInt32BE(4) / 2 ** 32;
  if (u < rates.permanent) return { failures: 0, permanent: true };
  if (u < rates.permanent + rates.beyondPolicy) return { failures: maxRetries + 1, permanent: false };
  if (u < rates.permanent + rates.beyondPolicy + rates.transient && maxRetries > 0) {
    return { failures: 1 + Math.floor(v * maxRetries), permanent: false };
  }
  return { failures: 0, permanent: false };
}

/** Whether the plan sends the message to dead letters under a policy of `maxRetries` retries. */
export function plannedDeadLetter(fault: PlannedFault, maxRetries: number): boolean {
  return fault.permanent || fault.failures > maxRetries;
}

/**
 * Wraps a handler with its planned faults. A transient fault is thrown after the handler has written its
 * effect through `ctx.tx`, so the effect must roll back with the inbox row; had it not, the audit would
 * count the award or deduction twice. The attempt number restarts at 1 when a message is redelivered
 * after a crash, so the plan holds across kills.
 */
export function faultyHandler<P>(handler: Handler<P>, plan: (payload: P) => PlannedFault): Handler<P> {
  return async (message, ctx) => {
    const fault = plan(message.payload);
    if (fault.permanent) throw new PermanentError('injected permanent failure');
    await handler(message, ctx);
    if (ctx.attempt <= fault.failures) {
      throw new RetryableError(`injected transient failure (attempt ${ctx.attempt}, ${fault.failures} planned)`);
    }
  };
}
