import { z } from 'zod';
import type { ZerolossError } from '../core/errors.ts';

/**
 * How a message type is retried (C6). Default: 3 retries, 2 s apart, in place.
 *
 * Modes and their ordering trade-off:
 * - `blocking`: the retry waits in the message's key lane. Later messages of the same key wait behind it,
 *   so per-key order holds; the cost is that one failing key holds its lane (never the other keys, and the
 *   lane gives its concurrency slot back while waiting) and the partition's commit point stays behind it.
 * - `topic`: the original bytes go to `<topic>.retry.<n>` with attempt headers and the main flow moves on
 *   at once. Nothing waits, but later messages of the same key can be applied before the retried one:
 *   use it only for types whose effects commute (or are guarded by a version column).
 */
export const retryPolicySchema = z
  .object({
    /** Retries after the first attempt; 0 dead-letters on the first retryable failure. */
    maxRetries: z.number().int().min(0).max(100).default(3),
    /** Delay before the first retry. */
    delayMs: z.number().int().min(0).default(2_000),
    /** `exponential` doubles the delay on each retry, up to `maxDelayMs`. */
    backoff: z.enum(['fixed', 'exponential']).default('fixed'),
    maxDelayMs: z.number().int().positive().default(300_000),
    mode: z.enum(['blocking', 'topic']).default('blocking'),
  })
  .strict();

export type RetryPolicyInput = z.input<typeof retryPolicySchema>;
export type RetryPolicy = z.output<typeof retryPolicySchema>;

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze(retryPolicySchema.parse({}));

export type RetryDecision = { action: 'retry'; delayMs: number } | { action: 'dead-letter'; reason: 'permanent' | 'exhausted' };

/** Delay before retry number `retry` (1-based). */
export function retryDelay(policy: RetryPolicy, retry: number): number {
  const factor = policy.backoff === 'exponential' ? 2 ** Math.max(0, retry - 1) : 1;
  return Math.min(policy.maxDelayMs, policy.delayMs * factor);
}

/** What to do after attempt number `attempt` (1-based) failed with `error`. */
/** Whether the policy allows an attempt numbered `attempt` (1-based): the first and `maxRetries` retries. */
export function attemptAllowed(policy: RetryPolicy, attempt: number): boolean {
  return attempt <= policy.maxRetries + 1;
}

export function decideRetry(policy: RetryPolicy, error: ZerolossError, attempt: number): RetryDecision {
  if (!error.retryable) return { action: 'dead-letter', reason: 'permanent' };
  if (!attemptAllowed(policy, attempt + 1)) return { action: 'dead-letter', reason: 'exhausted' };
  return { action: 'retry', delayMs: retryDelay(policy, attempt) };
}

/** Merges a per-type override over the consumer's default policy and validates the result once. */
export function resolveRetryPolicy(base: RetryPolicy, override: RetryPolicyInput | undefined): RetryPolicy {
  return Object.freeze(retryPolicySchema.parse({ ...base, ...(override ?? {}) }));
}
