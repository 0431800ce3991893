import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GapDetector } from '../../../src/consumer/gap-detector.ts';

describe('GapDetector', () => {
  test('reports gaps and repeats per (producer, key)', () => {
    const g = new GapDetector();
    assert.equal(g.observe('t', 0, 'p1', 'a', 1), undefined);
    assert.equal(g.observe('t', 0, 'p1', 'a', 2), undefined);
    assert.equal(g.observe('t', 0, 'p2', 'a', 1), undefined, 'another producer has its own sequence');
    assert.equal(g.observe('t', 0, 'p1', 'b', 1), undefined, 'another key has its own sequence');
    assert.deepEqual(g.observe('t', 0, 'p1', 'a', 5), {
      kind: 'gap',
      topic: 't',
      partition: 0,
      producerId: 'p1',
      key: 'a',
      expected: 3,
      received: 5,
      missing: 2,
    });
    assert.equal(g.observe('t', 0, 'p1', 'a', 5)?.kind, 'duplicate');
    assert.equal(g.observe('t', 0, 'p1', 'a', 2)?.kind, 'duplicate');
    assert.equal(g.observe('t', 0, 'p1', 'a', 6), undefined, 'a repeat does not move the baseline');
  });

  test('unsequenced records are ignored; the first record after a reassignment sets the baseline', () => {
    const g = new GapDetector();
    assert.equal(g.observe('t', 0, 'p1', 'a', 0), undefined);
    assert.equal(g.observe('t', 0, '', 'a', 7), undefined);
    assert.equal(g.observe('t', 0, 'p1', 'a', 40), undefined);
    g.forgetPartition('t', 0);
    assert.equal(g.observe('t', 0, 'p1', 'a', 38), undefined, 'no state for a partition we just got');
    assert.equal(g.tracked, 1);
  });

  test('forgets the least recently seen pair beyond its bound', () => {
    const g = new GapDetector(2);
    g.observe('t', 0, 'p', 'a', 1);
    g.observe('t', 0, 'p', 'b', 1);
    g.observe('t', 0, 'p', 'a', 2);
    g.observe('t', 0, 'p', 'c', 1);
    assert.equal(g.tracked, 2);
    assert.equal(g.observe('t', 0, 'p', 'b', 1), undefined, 'b was evicted, so its repeat is a new baseline');
    assert.equal(g.observe('t', 0, 'p', 'a', 4)?.kind, undefined, 'a was evicted by b coming back');
  });
});
