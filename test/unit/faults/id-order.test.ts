import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idChecks, loggingIds } from '../../../faults/id-order.ts';
import type { Outbox } from '../../../src/outbox/outbox.ts';

/** An outbox whose enqueue hands out the id it is given once `release` is called: overlapping calls, in any order. */
function gatedOutbox() {
  const pending: Array<() => void> = [];
  const outbox = {
    config: { producerId: 'p' },
    whenSent: async () => {},
    enqueue: (_tx: unknown, message: { id: string }) => new Promise((resolve) => pending.push(() => resolve({ id: message.id }))),
  } as unknown as Outbox;
  return { outbox, release: (i: number) => pending[i]?.() };
}

const enqueue = (outbox: Outbox, id: string) => outbox.enqueue({ query: async () => ({}) } as never, { id } as never);

test('overlapping enqueues may return in any order: not counted out of order (a Snowflake wait draws after the timer)', async () => {
  const { outbox: inner, release } = gatedOutbox();
  const { outbox, log } = loggingIds(inner);
  // Called first, returns last with the higher id: as a call that sat out a clock step and drew after one made later.
  const first = enqueue(outbox, '7');
  const second = enqueue(outbox, '5');
  release(1);
  await second;
  release(0);
  await first;
  assert.deepEqual(idChecks([log]), { idsChecked: 2, duplicateIds: 0, idsOutOfOrder: 0, samples: [] });
});

test('an enqueue called after another returned gets a lower id: counted', async () => {
  const { outbox: inner, release } = gatedOutbox();
  const { outbox, log } = loggingIds(inner);
  const first = enqueue(outbox, '7');
  release(0);
  await first;
  const second = enqueue(outbox, '5');
  release(1);
  await second;
  const checks = idChecks([log]);
  assert.equal(checks.idsOutOfOrder, 1);
  assert.deepEqual(checks.samples, ['p: 5 after 7']);
});

test('an id handed out twice is counted, and UUIDv7 text compares as text', async () => {
  const { outbox: inner, release } = gatedOutbox();
  const { outbox, log } = loggingIds(inner);
  for (const [i, id] of [
    '0190a0b0-0000-7000-8000-000000000001',
    '0190a0b0-0000-7000-8000-000000000002',
    '0190a0b0-0000-7000-8000-000000000002',
  ].entries()) {
    const call = enqueue(outbox, id);
    release(i);
    await call;
  }
  const checks = idChecks([log]);
  assert.equal(checks.duplicateIds, 1);
  assert.equal(checks.idsOutOfOrder, 1, 'the repeated id is not above the highest returned before it');
});
