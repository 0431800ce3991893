import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { retryFloor } from '../../../src/demo/retry-floor.ts';

describe('retryFloor', () => {
  test("a key pays its messages' planned retries one after another, from when each was published", () => {
    const floor = retryFloor(
      [
        // user a: the first message waits 2 retries, the second (published meanwhile) waits for it, then 1 of its own.
        { key: 'a', sentAtMs: 1_000, retries: 2 },
        { key: 'a', sentAtMs: 1_500, retries: 1 },
        // user b: published late, no retries.
        { key: 'b', sentAtMs: 6_000, retries: 0 },
      ],
      2_000,
    );
    assert.equal(floor, 1_000 + 3 * 2_000);
  });

  test('a message published after its predecessor finished starts at its own publish time', () => {
    const floor = retryFloor(
      [
        { key: 'a', sentAtMs: 0, retries: 1 },
        { key: 'a', sentAtMs: 10_000, retries: 1 },
      ],
      250,
    );
    assert.equal(floor, 10_250);
  });

  test('keys do not wait for each other; the floor grows with the delay', () => {
    const waits = [
      { key: 'a', sentAtMs: 0, retries: 5 },
      { key: 'b', sentAtMs: 0, retries: 5 },
    ];
    assert.equal(retryFloor(waits, 250), 1_250);
    assert.equal(retryFloor(waits, 2_000), 10_000);
    assert.equal(retryFloor([], 2_000), undefined);
  });
});
