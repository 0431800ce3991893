import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZerolossError } from '../../../src/core/errors.ts';
import { SendWaiters } from '../../../src/outbox/when-sent.ts';
import { MESSAGE_STATE, type MessageState, type SendStatus } from '../../../src/ports/outbox-store.ts';

// The poll logic against a scripted reader (pure logic: the integration test runs it on real databases).

function status(messageId: string, state: MessageState, extra: Partial<SendStatus> = {}): SendStatus {
  return {
    messageId,
    state,
    topic: 't',
    partition: undefined,
    offset: undefined,
    sentAt: undefined,
    lastError: undefined,
    attempts: 1,
    ...extra,
  };
}

test('waiters that arrive together share each poll; polls back off from 5 ms, doubling', async () => {
  const polls: Array<{ at: number; ids: string[] }> = [];
  const started = performance.now();
  let sendAfter = 4;
  const waiters = new SendWaiters(async (ids) => {
    polls.push({ at: performance.now() - started, ids });
    sendAfter--;
    return ids.map((id) =>
      status(
        id,
        sendAfter <= 0 ? MESSAGE_STATE.sent : MESSAGE_STATE.pending,
        sendAfter <= 0 ? { partition: 1, offset: 7n, sentAt: new Date() } : {},
      ),
    );
  }, 'test.outbox');
  const sent = await Promise.all(['a', 'b', 'c'].map((id) => waiters.whenSent(id, { timeoutMs: 5_000 })));
  assert.deepEqual(
    sent.map((s) => [s.id, s.partition, s.offset]),
    [
      ['a', 1, 7n],
      ['b', 1, 7n],
      ['c', 1, 7n],
    ],
  );
  assert.equal(polls.length, 4, 'one poll per interval for all three');
  for (const poll of polls) assert.deepEqual(poll.ids, ['a', 'b', 'c']);
  // Intervals 5, 10, 20, 40 ms (timers fire late, never early).
  for (let i = 1; i < polls.length; i++) assert.ok(polls[i]!.at - polls[i - 1]!.at >= 5 * 2 ** i - 1, `poll ${i} came early`);
});

test('a poll that fails with a retryable error keeps waiting; the timeout names it and keeps it as the cause', async () => {
  const outage = new ZerolossError('ZL_STORE_UNAVAILABLE', 'the database is unavailable: ECONNREFUSED', { retryable: true });
  let calls = 0;
  const waiters = new SendWaiters(async () => {
    calls++;
    throw outage;
  }, 'test.outbox');
  const error = (await waiters.whenSent('m', { timeoutMs: 100 }).catch((e: unknown) => e)) as ZerolossError;
  assert.equal(error.code, 'ZL_SEND_TIMEOUT');
  assert.equal(error.retryable, true);
  assert.equal(error.cause, outage);
  assert.match(error.message, /the last poll failed: ZL_STORE_UNAVAILABLE/);
  assert.match(error.message, /relay will still send it/);
  assert.ok(calls >= 2, `polled ${calls} times through the outage`);
});

test('a poll that fails for good (no connection to read with) rejects its waiters at once with that error', async () => {
  const refused = new ZerolossError('ZL_STORE_AUTH', 'the database refused the login', { retryable: false });
  const waiters = new SendWaiters(async () => {
    throw refused;
  }, 'test.outbox');
  await assert.rejects(waiters.whenSent('m', { timeoutMs: 10_000 }), (e) => e === refused);
});

test('a failed row keeps its waiter waiting (the relay retries it); the timeout reports its state and last error', async () => {
  const waiters = new SendWaiters(
    async (ids) => ids.map((id) => status(id, MESSAGE_STATE.failed, { attempts: 3, lastError: 'broker away' })),
    'test.outbox',
  );
  const error = (await waiters.whenSent('m', { timeoutMs: 60 }).catch((e: unknown) => e)) as ZerolossError;
  assert.equal(error.code, 'ZL_SEND_TIMEOUT');
  assert.match(error.message, /failed, 3 attempt\(s\), last error: broker away/);
  assert.deepEqual([error.details.state, error.details.attempts, error.details.timeoutMs], ['failed', 3, 60]);
});
