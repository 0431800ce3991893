import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HandlerRegistry, routeFor, upcast } from '../../../src/consumer/handler-registry.ts';
import { DEFAULT_RETRY_POLICY } from '../../../src/consumer/retry-policy.ts';

const noop = async () => {};

describe('HandlerRegistry', () => {
  test('dispatches by type; an unknown type is a permanent error naming the known ones', () => {
    const r = new HandlerRegistry(DEFAULT_RETRY_POLICY, 3);
    r.register('physical', noop, { retry: { maxRetries: 5 } });
    r.register('virtual', noop, { retry: { maxRetries: 1 } });
    assert.equal(routeFor(r, 'physical').retry.maxRetries, 5);
    assert.equal(routeFor(r, 'virtual').retry.maxRetries, 1);
    assert.equal(routeFor(r, 'virtual').retry.delayMs, 2_000, 'unset fields keep the default');
    assert.throws(
      () => routeFor(r, 'coupon'),
      (e: { code: string; message: string; retryable: boolean }) => {
        assert.equal(e.code, 'ZL_UNKNOWN_TYPE');
        assert.equal(e.retryable, false);
        assert.match(e.message, /coupon.*known: physical, virtual/);
        return true;
      },
    );
    assert.throws(() => r.register('virtual', noop), /already registered/);
  });

  test('upcasts the latest three versions step by step; newer and older versions are refused', () => {
    const r = new HandlerRegistry(DEFAULT_RETRY_POLICY, 3);
    const entry = r.register('order', noop, {
      version: 3,
      upcasters: {
        1: (p: { amount: number }) => ({ amountCents: p.amount * 100 }),
        2: (p: { amountCents: number }) => ({ amountCents: p.amountCents, currency: 'EUR' }),
      },
    });
    assert.deepEqual(upcast(entry, 1, { amount: 2 }), { amountCents: 200, currency: 'EUR' });
    assert.deepEqual(upcast(entry, 2, { amountCents: 5 }), { amountCents: 5, currency: 'EUR' });
    assert.deepEqual(upcast(entry, 3, { amountCents: 7, currency: 'USD' }), { amountCents: 7, currency: 'USD' });
    assert.throws(() => upcast(entry, 4, {}), {
      code: 'ZL_UNSUPPORTED_VERSION',
      message: /version 4 is newer than this consumer's version 3/,
    });
  });

  test('a type that cannot accept the latest three versions is refused at registration', () => {
    const r = new HandlerRegistry(DEFAULT_RETRY_POLICY, 3);
    assert.throws(
      () => r.register('order', noop, { version: 3, upcasters: { 2: (p) => p } }),
      /accept versions 1\.\.3: add upcasters for v1/,
    );
    const ok = r.register('old', noop, { version: 5, upcasters: { 3: (p) => p, 4: (p) => p } });
    assert.equal(ok.oldestVersion, 3);
    assert.throws(() => upcast(ok, 2, {}), { code: 'ZL_UNSUPPORTED_VERSION', message: /older than the oldest accepted version 3/ });
  });

  test('an upcaster that throws is a payload error, not a crash', () => {
    const r = new HandlerRegistry(DEFAULT_RETRY_POLICY, 2);
    const entry = r.register('t', noop, {
      version: 2,
      upcasters: {
        1: () => {
          throw new Error('missing field');
        },
      },
    });
    assert.throws(() => upcast(entry, 1, {}), { code: 'ZL_INVALID_PAYLOAD', message: /v1 to v2 failed: missing field/ });
  });
});
