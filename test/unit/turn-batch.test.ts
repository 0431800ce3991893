import assert from 'node:assert/strict';
import { test } from 'node:test';
import { turnBatch } from '../../src/core/turn-batch.ts';

test('turnBatch hands over what was added in one turn together, and later additions in the next batch', async () => {
  const batches: number[][] = [];
  let flushed: () => void = () => {};
  let next = new Promise<void>((r) => {
    flushed = r;
  });
  const add = turnBatch<number>((items) => {
    batches.push(items);
    flushed();
  });
  add(1);
  add(2);
  // Still the same turn, after a microtask: joins the batch.
  await Promise.resolve();
  add(3);
  await next;
  next = new Promise<void>((r) => {
    flushed = r;
  });
  add(4);
  await next;
  assert.deepEqual(batches, [[1, 2, 3], [4]]);
});
