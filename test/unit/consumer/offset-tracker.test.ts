import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OffsetTracker } from '../../../src/consumer/offset-tracker.ts';

describe('OffsetTracker', () => {
  test('commits only up to the smallest unfinished offset', () => {
    const t = new OffsetTracker();
    const e = t.add('t', 0, 10n) as number;
    for (const o of [11n, 12n, 13n]) t.add('t', 0, o);
    assert.equal(t.commitPoint('t', 0), 10n, 'nothing finished: resume at the first offset');
    t.finish('t', 0, 12n, e);
    t.finish('t', 0, 13n, e);
    assert.equal(t.commitPoint('t', 0), 10n, 'later offsets finished out of order do not move the point');
    t.finish('t', 0, 10n, e);
    assert.equal(t.commitPoint('t', 0), 11n);
    t.finish('t', 0, 11n, e);
    assert.equal(t.commitPoint('t', 0), 14n, 'all finished: one past the last delivered');
    assert.equal(t.pending, 0);
  });

  test('tolerates offsets that hold no record (transaction markers, compaction)', () => {
    const t = new OffsetTracker();
    const e = t.add('t', 1, 5n) as number;
    t.add('t', 1, 9n);
    t.finish('t', 1, 5n, e);
    assert.equal(t.commitPoint('t', 1), 9n);
    t.finish('t', 1, 9n, e);
    assert.equal(t.commitPoint('t', 1), 10n);
  });

  test('refuses redeliveries of tracked offsets and keeps partitions apart', () => {
    const t = new OffsetTracker();
    const e0 = t.add('t', 0, 0n) as number;
    assert.ok(t.add('t', 0, 1n) !== undefined);
    assert.equal(t.add('t', 0, 1n), undefined, 'the same offset again is a redelivery');
    assert.equal(t.add('t', 0, 0n), undefined);
    const e1 = t.add('t', 1, 0n) as number;
    t.finish('t', 0, 0n, e0);
    assert.equal(t.commitPoint('t', 0), 1n);
    assert.equal(t.commitPoint('t', 1), 0n);
    t.finish('t', 1, 0n, e1);
    assert.equal(t.commitPoint('t', 1), 1n);
    assert.equal(t.pending, 1);
  });

  test('a dropped partition ignores late finishes, and a re-added one starts fresh', () => {
    const t = new OffsetTracker();
    const old = t.add('t', 0, 100n) as number;
    t.add('t', 0, 101n);
    t.drop('t', 0);
    assert.equal(t.pending, 0);
    assert.equal(t.commitPoint('t', 0), undefined);
    const fresh = t.add('t', 0, 50n) as number;
    assert.notEqual(fresh, old);
    t.finish('t', 0, 100n, old);
    assert.equal(t.commitPoint('t', 0), 50n, 'a finish from before the drop changes nothing');
    assert.equal(t.isCurrent('t', 0, old), false);
    assert.equal(t.isCurrent('t', 0, fresh), true);
  });

  test('finishing twice, or an offset never added, changes nothing', () => {
    const t = new OffsetTracker();
    const e = t.add('t', 0, 1n) as number;
    t.add('t', 0, 2n);
    t.finish('t', 0, 2n, e);
    t.finish('t', 0, 2n, e);
    t.finish('t', 0, 7n, e);
    assert.equal(t.pending, 1);
    t.finish('t', 0, 1n, e);
    assert.equal(t.commitPoint('t', 0), 3n);
    assert.equal(t.pending, 0);
  });

  test('holds up over many records finished in random order', () => {
    const t = new OffsetTracker();
    const e = t.add('t', 0, 0n) as number;
    const n = 5_000;
    for (let i = 1; i < n; i++) t.add('t', 0, BigInt(i));
    const order = Array.from({ length: n }, (_, i) => i).sort(() => Math.random() - 0.5);
    const done = new Set<number>();
    for (const i of order) {
      t.finish('t', 0, BigInt(i), e);
      done.add(i);
      let expected = 0;
      while (done.has(expected)) expected++;
      if (i % 97 === 0) assert.equal(t.commitPoint('t', 0), BigInt(expected));
    }
    assert.equal(t.commitPoint('t', 0), BigInt(n));
    assert.equal(t.pending, 0);
  });
});
