import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PermanentError } from '../../src/core/errors.ts';
import { AbandonedError, type RoutedDelivery } from '../../src/consumer/delivery.ts';
import { HoldExpiredError, NotYetError, StaleVersionError } from '../../src/consumer/guards/guard-errors.ts';
import { resolveHoldPolicy } from '../../src/consumer/guards/hold-policy.ts';
import { HandlerRegistry } from '../../src/consumer/handler-registry.ts';
import { holdStage } from '../../src/consumer/middleware/hold.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/consumer/retry-policy.ts';

/** A delivery as the hold stage sees it; the lane's sleep records its waits and moves the mocked clock on. */
function held(hold: { maxMs: number; delayMs: number; maxDelayMs: number }, tick: (ms: number) => void, awake = true) {
  const sleeps: number[] = [];
  const d = {
    attemptsMade: 0,
    signal: new AbortController().signal,
    routed: { route: { hold } },
    lane: {
      sleep: async (ms: number) => {
        sleeps.push(ms);
        tick(ms);
        return awake;
      },
    },
  } as unknown as RoutedDelivery;
  return { d, sleeps };
}

/** The attempt below the hold stage: counts a handler run as the effect stage does, then fails or succeeds. */
function attempts(d: RoutedDelivery, outcomes: Array<Error | undefined>) {
  let i = 0;
  return async () => {
    d.attemptsMade++;
    const outcome = outcomes[Math.min(i++, outcomes.length - 1)];
    if (outcome) throw outcome;
  };
}

describe('hold stage (delayed compare-and-fix)', () => {
  const policy = { maxMs: 1_000, delayMs: 100, maxDelayMs: 400 };

  test('re-checks with doubling pauses, charges nothing, and lets the message through once its predecessor landed', async (t) => {
    t.mock.timers.enable({ apis: ['Date'] });
    const { d, sleeps } = held(policy, (ms) => t.mock.timers.tick(ms));
    const notYet = new NotYetError('order o1 not created yet');
    await holdStage()(d, attempts(d, [notYet, notYet, notYet, undefined]));
    assert.deepEqual(sleeps, [100, 200, 400]);
    assert.equal(d.attemptsMade, 1, 'the refusals were not counted as attempts');
  });

  test('past maxMs the message fails as ZL_HOLD_EXPIRED (not retryable) with the reason, charged one attempt', async (t) => {
    t.mock.timers.enable({ apis: ['Date'] });
    const { d, sleeps } = held(policy, (ms) => t.mock.timers.tick(ms));
    const error = await holdStage()(d, attempts(d, [new NotYetError('order o3 not created yet')])).catch((e: unknown) => e);
    assert.ok(error instanceof HoldExpiredError);
    assert.equal(error.code, 'ZL_HOLD_EXPIRED');
    assert.equal(error.retryable, false);
    assert.match(error.message, /held 1\.0 s \(5 checks\) for a predecessor that did not land: order o3 not created yet/);
    // The last pause is cut to the bound, so the last check falls on it.
    assert.deepEqual(sleeps, [100, 200, 400, 300]);
    assert.equal(d.attemptsMade, 1);
  });

  test('any other failure passes through at once, for the retry stage to judge', async (t) => {
    t.mock.timers.enable({ apis: ['Date'] });
    const { d, sleeps } = held(policy, (ms) => t.mock.timers.tick(ms));
    const stale = new StaleVersionError('orders', 'o1', 1, 2);
    await assert.rejects(holdStage()(d, attempts(d, [stale])), (e) => e === stale);
    await assert.rejects(holdStage()(d, attempts(d, [new PermanentError('no')])), { code: 'ZL_PERMANENT' });
    assert.deepEqual(sleeps, []);
  });

  test('a hold interrupted by a revoke or stop abandons the record (it is not finished, the next owner gets it)', async (t) => {
    t.mock.timers.enable({ apis: ['Date'] });
    const { d } = held(policy, (ms) => t.mock.timers.tick(ms), false);
    await assert.rejects(holdStage()(d, attempts(d, [new NotYetError('later')])), AbandonedError);
  });
});

describe('hold option', () => {
  test('defaults, and a bad value refused at registration with the key named', () => {
    assert.deepEqual(resolveHoldPolicy('t', undefined), { maxMs: 30_000, delayMs: 100, maxDelayMs: 2_000 });
    const registry = new HandlerRegistry(DEFAULT_RETRY_POLICY, 3);
    assert.equal(registry.register('a', async () => {}, { hold: { maxMs: 5_000 } }).hold.maxMs, 5_000);
    assert.throws(() => registry.register('b', async () => {}, { hold: { maxMs: 0 } }), {
      code: 'ZL_INVALID_CONFIG',
      message: /hold of b: maxMs/,
    });
    assert.throws(() => registry.register('c', async () => {}, { hold: { maxMS: 5 } as never }), { code: 'ZL_INVALID_CONFIG' });
  });

  test('NotYetError outside a consumer is an ordinary retryable error; a stale version is not retryable', () => {
    assert.equal(new NotYetError('x').retryable, true);
    const early = new StaleVersionError('orders', 'o1', 3, null);
    assert.equal(early.retryable, false);
    assert.equal(early.rowBehind, true);
    assert.equal(new StaleVersionError('orders', 'o1', 3, 4).rowBehind, false);
  });
});

test('zeroloss/guards exports the guards and their errors', async () => {
  const guards = await import('../../src/entry/guards.ts');
  assert.deepEqual(Object.keys(guards).sort(), [
    'HoldExpiredError',
    'LockBusyError',
    'NotYetError',
    'StaleVersionError',
    'onceUnderLock',
    'stateColumns',
    'versionGuard',
  ]);
});
