import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConsumerMetrics } from '../../../src/consumer/consumer-metrics.ts';
import { newDelivery } from '../../../src/consumer/delivery.ts';
import type { RegisteredHandler } from '../../../src/consumer/handler-registry.ts';
import { retryMiddleware } from '../../../src/consumer/middleware/retry.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';
import { retryPolicySchema } from '../../../src/consumer/retry-policy.ts';
import type { ZerolossError } from '../../../src/core/errors.ts';

test('a database outage in the effect transaction is waited out in place, reported as ZL_STORE_UNAVAILABLE, never charged', async () => {
  const reported: ZerolossError[] = [];
  let calls = 0;
  const attempt = async () => {
    calls++;
    if (calls <= 2) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  };
  const lane = {
    sleep: async () => true,
    wait: async () => true,
    exclusive: <T>(fn: () => Promise<T>) => fn(),
    ticket: new LaneTicket(undefined),
  };
  const d = newDelivery(
    { topic: 't', partition: 0, offset: 0n, key: 'k', value: Buffer.from('{}'), headers: {} },
    'g',
    new AbortController().signal,
    lane,
  );
  d.route = { type: 'x', retry: retryPolicySchema.parse({ maxRetries: 0 }) } as unknown as RegisteredHandler;
  const middleware = retryMiddleware(attempt, {
    publisher: undefined,
    reporter: { emit: () => true } as never,
    metrics: createConsumerMetrics(),
    unavailable: { baseMs: 1, maxMs: 1, onError: (e) => reported.push(e as ZerolossError) },
  });
  await middleware(d, async () => {});
  assert.equal(calls, 3, 'retried in place until the database answered, beyond maxRetries 0');
  assert.deepEqual(
    reported.map((e) => e.code),
    ['ZL_STORE_UNAVAILABLE', 'ZL_STORE_UNAVAILABLE'],
  );
  assert.equal(d.attempt, 1, 'the outage was not charged to the message');
});
