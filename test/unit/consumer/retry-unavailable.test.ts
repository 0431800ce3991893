import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createConsumerMetrics } from '../../../src/consumer/consumer-metrics.ts';
import { newDelivery, type Routed, setDecoded, setRouted } from '../../../src/consumer/delivery.ts';
import { retryStage } from '../../../src/consumer/middleware/retry.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';
import { retryPolicySchema } from '../../../src/consumer/retry-policy.ts';
import { ZerolossError } from '../../../src/core/errors.ts';

/** Runs the retry stage once over a routed delivery whose type allows no retries, with waits that return at once. */
async function runRetryStage(attempt: () => Promise<void>, onError: (error: ZerolossError) => void) {
  const lane = {
    sleep: async () => true,
    wait: async () => true,
    exclusive: <T>(fn: () => Promise<T>) => fn(),
    ticket: new LaneTicket(undefined),
  };
  const d = newDelivery(
    { topic: 't', partition: 0, offset: 0n, key: 'k', value: Buffer.from('{}'), headers: {} },
    { groupId: 'g', signal: new AbortController().signal, lane, epoch: 1 },
  );
  setDecoded(d, { envelope: { id: 'm1' } as never, payload: {} });
  setRouted(d, { route: { type: 'x', retry: retryPolicySchema.parse({ maxRetries: 0 }) } } as unknown as Routed);
  const stage = retryStage({
    publisher: undefined,
    reporter: { emit: () => true } as never,
    metrics: createConsumerMetrics(),
    unavailable: { baseMs: 1, maxMs: 1, onError: (e) => onError(e as ZerolossError) },
  });
  await stage(d, attempt);
  return d;
}

test('a database outage in the effect transaction is waited out in place, reported as ZL_STORE_UNAVAILABLE, never charged', async () => {
  const reported: ZerolossError[] = [];
  let calls = 0;
  const attempt = async () => {
    calls++;
    // What the store adapter raises for a refused connection (test/unit/adapters/postgres-errors.test.ts).
    if (calls <= 2)
      throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'the database is unavailable: connect ECONNREFUSED', { retryable: true });
  };
  const d = await runRetryStage(attempt, (e) => reported.push(e));
  assert.equal(calls, 3, 'retried in place until the database answered, beyond maxRetries 0');
  assert.deepEqual(
    reported.map((e) => e.code),
    ['ZL_STORE_UNAVAILABLE', 'ZL_STORE_UNAVAILABLE'],
  );
  assert.equal(d.attempt, 1, 'the outage was not charged to the message');
});

test('a database refusing TLS or the login mid-run is waited out like an outage, reported under its own code, never charged', async () => {
  for (const code of ['ZL_STORE_TLS', 'ZL_STORE_AUTH'] as const) {
    const reported: ZerolossError[] = [];
    let calls = 0;
    const attempt = async () => {
      calls++;
      // A certificate that expired or a password rotated while the consumer runs: every message fails alike,
      // so dead-lettering them would lose healthy messages to a configuration fault.
      if (calls <= 2) throw new ZerolossError(code, 'refused by the database', { retryable: false });
    };
    const d = await runRetryStage(attempt, (e) => reported.push(e));
    assert.equal(calls, 3, `${code}: retried in place until the database let it in`);
    assert.deepEqual(
      reported.map((e) => e.code),
      [code, code],
    );
    assert.equal(d.attempt, 1, `${code}: not charged to the message`);
  }
});
