import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PermanentError, RetryableError, ZerolossError } from '../../../src/core/errors.ts';
import { DEFAULT_RETRY_POLICY, decideRetry, resolveRetryPolicy, retryDelay } from '../../../src/consumer/retry-policy.ts';

describe('retry policy', () => {
  test('default: 3 retries, 2 s apart, in place', () => {
    assert.equal(DEFAULT_RETRY_POLICY.maxRetries, 3);
    assert.equal(DEFAULT_RETRY_POLICY.delayMs, 2_000);
    assert.equal(DEFAULT_RETRY_POLICY.mode, 'blocking');
    const transient = new RetryableError('timeout');
    assert.deepEqual(decideRetry(DEFAULT_RETRY_POLICY, transient, 1), { action: 'retry', delayMs: 2_000 });
    assert.deepEqual(decideRetry(DEFAULT_RETRY_POLICY, transient, 3), { action: 'retry', delayMs: 2_000 });
    assert.deepEqual(decideRetry(DEFAULT_RETRY_POLICY, transient, 4), { action: 'dead-letter', reason: 'exhausted' });
  });

  test('a permanent error is never retried', () => {
    assert.deepEqual(decideRetry(DEFAULT_RETRY_POLICY, new PermanentError('sold out'), 1), { action: 'dead-letter', reason: 'permanent' });
    const nonRetryable = new ZerolossError('ZL_INVALID_PAYLOAD', 'bad');
    assert.equal(decideRetry(DEFAULT_RETRY_POLICY, nonRetryable, 1).action, 'dead-letter');
  });

  test('per-type overrides: physical prize 5 retries, virtual goods 1, exponential backoff capped', () => {
    const physical = resolveRetryPolicy(DEFAULT_RETRY_POLICY, { maxRetries: 5 });
    const virtual = resolveRetryPolicy(DEFAULT_RETRY_POLICY, { maxRetries: 1 });
    const err = new RetryableError('x');
    assert.equal(decideRetry(physical, err, 5).action, 'retry');
    assert.equal(decideRetry(physical, err, 6).action, 'dead-letter');
    assert.equal(decideRetry(virtual, err, 1).action, 'retry');
    assert.equal(decideRetry(virtual, err, 2).action, 'dead-letter');
    const exp = resolveRetryPolicy(DEFAULT_RETRY_POLICY, { backoff: 'exponential', delayMs: 100, maxDelayMs: 500 });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => retryDelay(exp, n)),
      [100, 200, 400, 500, 500],
    );
  });

  test('rejects unknown keys and bad values with the key named', () => {
    assert.throws(() => resolveRetryPolicy(DEFAULT_RETRY_POLICY, { maxRetries: -1 }));
    assert.throws(() => resolveRetryPolicy(DEFAULT_RETRY_POLICY, { retries: 2 } as never), /retries/);
  });
});
