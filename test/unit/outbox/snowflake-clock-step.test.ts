import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOutbox } from '../../../src/outbox/outbox.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';

/**
 * Found by the fault suite's clock-step-snowflake scenario (issue #19): with Snowflake ids and the default
 * onClockBackward 'wait', a backward clock step within maxBackwardMs (5 s) is sat out by spinning on the
 * clock inside enqueue, so the producer's whole process stops for as long as the step: the suite measured
 * its event loop blocked for 5,021 ms (an 8 s step: 3 s of ZL_CLOCK_MOVED_BACKWARDS, then a 5 s spin). Every
 * other request, timer, database keepalive and broker heartbeat of the application waits with it.
 *
 * What the test asks: enqueue may wait out the step, but not by holding the event loop. It failed before the
 * fix (a 20 ms timer fired after 3,026 ms); enqueue now waits the generator's pendingWaitMs on a timer.
 */
test('Snowflake ids: a backward clock step within maxBackwardMs does not block the event loop while enqueue waits', async () => {
  let behindMs = 0;
  const clock = { now: () => Date.now() - behindMs };
  const outbox = createOutbox({
    store: { outbox: { insert: async () => ({ seq: 1 }) } as never },
    producerId: 'clock-step',
    ids: { workerId: 1 },
    clock,
  });
  const tx: SqlExecutor = { query: async () => ({ rows: [], rowCount: 0 }) } as never;
  await outbox.enqueue(tx, { topic: 't', key: 'k', type: 'x', payload: {} });
  behindMs = 3_000;
  const started = performance.now();
  const fired = new Promise<number>((resolve) => setTimeout(() => resolve(performance.now() - started), 20));
  await outbox.enqueue(tx, { topic: 't', key: 'k', type: 'x', payload: {} });
  const timerAfterMs = await fired;
  assert.ok(timerAfterMs < 1_500, `a 20 ms timer fired after ${Math.round(timerAfterMs)} ms: enqueue held the event loop`);
});
