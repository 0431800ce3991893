import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDuration, parseTime, parseWindow, sliceWindow } from '../../../src/operations/time-window.ts';

describe('time windows', () => {
  const now = new Date('2025-03-01T12:00:00.000Z');

  test('durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('15m'), 900_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.equal(parseDuration('1.5s'), 1_500);
    assert.equal(parseDuration('250'), 250);
    assert.throws(() => parseDuration('soon'), /not a duration/);
  });

  test('points in time: now, a duration ago, epoch ms, ISO', () => {
    assert.equal(parseTime('now', now).toISOString(), now.toISOString());
    assert.equal(parseTime('15m', now).toISOString(), '2025-03-01T11:45:00.000Z');
    assert.equal(parseTime('-2h', now).toISOString(), '2025-03-01T10:00:00.000Z');
    assert.equal(parseTime('1740830400000', now).toISOString(), '2025-03-01T12:00:00.000Z');
    assert.equal(parseTime('2025-02-28T23:00:00+01:00', now).toISOString(), '2025-02-28T22:00:00.000Z');
    assert.equal(parseTime('2025-02-28', now).toISOString(), '2025-02-28T00:00:00.000Z');
    assert.throws(() => parseTime('yesterday-ish', now), /not a time/);
  });

  test('a window needs --since and must not be empty', () => {
    const w = parseWindow('1h', undefined, now);
    assert.deepEqual([w.from.toISOString(), w.to.toISOString()], ['2025-03-01T11:00:00.000Z', now.toISOString()]);
    assert.throws(() => parseWindow(undefined, 'now', now), /--since is required/);
    assert.throws(() => parseWindow('now', '1h', now), /empty window/);
  });

  test('slices cover the window without overlap', () => {
    const slices = sliceWindow({ from: new Date(0), to: new Date(25) }, 10);
    assert.deepEqual(
      slices.map((s) => [s.from.getTime(), s.to.getTime()]),
      [
        [0, 10],
        [10, 20],
        [20, 25],
      ],
    );
  });
});
