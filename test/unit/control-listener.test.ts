import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ControlMessage, encodeControl } from '../../src/core/control-message.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { PermanentError, ZerolossError } from '../../src/core/errors.ts';
import { listenControl } from '../../src/operations/control-channel.ts';
import type { ReceivedBatch, Subscriber } from '../../src/ports/transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

const at = '2026-12-05T08:00:00.000Z';

/** A subscriber port standing in for a broker: the test hands it batches and reads the commits. */
function fakeSubscriber() {
  let deliver: ((batch: ReceivedBatch) => void) | undefined;
  const commits: bigint[] = [];
  const subscriber: Subscriber = {
    async subscribe(options) {
      deliver = options.onRecords;
      return {
        async commit(offsets) {
          for (const o of offsets) commits.push(o.offset);
        },
        pause() {},
        resume() {},
        async close() {},
      };
    },
  };
  return {
    subscriber,
    commits,
    send(messages: ControlMessage[]) {
      const records: IncomingRecord[] = messages.map((m, i) => ({ ...encodeControl(m), partition: 0, offset: BigInt(i) }));
      deliver?.({ topic: records[0]?.topic ?? '', partition: 0, records } as ReceivedBatch);
    },
  };
}

const request = (fromSeq: number): ControlMessage => ({
  kind: 'resend-request',
  group: 'g',
  topic: 't',
  producerId: 'p',
  key: 'k',
  fromSeq,
  toSeq: fromSeq,
  at,
});

test('a control handler that keeps failing is skipped after maxAttempts; the later records of its partition still run', async () => {
  const broker = fakeSubscriber();
  const handled: number[] = [];
  const errors: Error[] = [];
  let attempts = 0;
  const listener = await listenControl({
    subscriber: broker.subscriber,
    groupId: 'serve',
    retryDelayMs: 1,
    maxAttempts: 3,
    onError: (e) => errors.push(e),
    handlers: {
      'resend-request': async (m) => {
        if (m.fromSeq === 1) {
          attempts++;
          throw new Error('lookup failed');
        }
        handled.push(m.fromSeq);
      },
    },
  });
  broker.send([request(1), request(2)]);
  await waitFor(() => broker.commits.length > 0, { what: 'the partition to be committed' });
  assert.equal(attempts, 3);
  assert.deepEqual(handled, [2]);
  assert.deepEqual(broker.commits, [2n]);
  const skipped = errors.filter((e) => (e as ZerolossError).code === 'ZL_CONTROL_SKIPPED') as ZerolossError[];
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0]?.details.attempts, 3);
  assert.match(skipped[0]?.message ?? '', /resend-request .* skipped after 3 attempt\(s\): ZL_UNKNOWN: lookup failed/);
  await listener.close();
});

test('a non-retryable handler error skips the record at once', async () => {
  const broker = fakeSubscriber();
  let attempts = 0;
  const errors: Error[] = [];
  const listener = await listenControl({
    subscriber: broker.subscriber,
    groupId: 'serve',
    retryDelayMs: 1,
    onError: (e) => errors.push(e),
    handlers: {
      'resend-request': async () => {
        attempts++;
        throw new PermanentError('no such producer');
      },
    },
  });
  broker.send([request(1)]);
  await waitFor(() => broker.commits.length > 0, { what: 'the partition to be committed' });
  assert.equal(attempts, 1);
  assert.deepEqual(
    errors.map((e) => (e as ZerolossError).code),
    ['ZL_PERMANENT', 'ZL_CONTROL_SKIPPED'],
  );
  await listener.close();
});

test('an outage of the store is waited out past maxAttempts: the record is handled, never skipped', async () => {
  const broker = fakeSubscriber();
  let attempts = 0;
  const errors: Error[] = [];
  const listener = await listenControl({
    subscriber: broker.subscriber,
    groupId: 'serve',
    retryDelayMs: 1,
    maxRetryDelayMs: 2,
    maxAttempts: 2,
    onError: (e) => errors.push(e),
    handlers: {
      'resend-request': async () => {
        attempts++;
        if (attempts <= 6) throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'database down', { retryable: true });
      },
    },
  });
  broker.send([request(1)]);
  await waitFor(() => broker.commits.length > 0, { what: 'the partition to be committed' });
  assert.equal(attempts, 7);
  assert.equal(errors.filter((e) => (e as ZerolossError).code === 'ZL_CONTROL_SKIPPED').length, 0);
  await listener.close();
});

test('close() ends a retry wait at once instead of waiting out the backoff', async () => {
  const broker = fakeSubscriber();
  let attempts = 0;
  const listener = await listenControl({
    subscriber: broker.subscriber,
    groupId: 'serve',
    retryDelayMs: 60_000,
    handlers: {
      'resend-request': async () => {
        attempts++;
        throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'database down', { retryable: true });
      },
    },
  });
  broker.send([request(1)]);
  await waitFor(() => attempts === 1, { what: 'the first attempt' });
  const started = Date.now();
  await listener.close();
  assert.ok(Date.now() - started < 5_000, `close took ${Date.now() - started} ms`);
  assert.deepEqual(broker.commits, []);
});
