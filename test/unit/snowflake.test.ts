import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSnowflake, Snowflake } from '../../src/core/snowflake.ts';

function fakeClock(start: number) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

test('ids are strictly increasing and carry timestamp and worker id', () => {
  const clock = fakeClock(Date.UTC(2026, 0, 1));
  const gen = new Snowflake({
    workerId: 7,
    clock,
    waitUntil: (ms) => {
      clock.t = ms;
    },
  });
  const ids: bigint[] = [];
  for (let i = 0; i < 10_000; i++) {
    if (i % 1000 === 0) clock.t += 1;
    ids.push(BigInt(gen.next()));
  }
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `id ${i} not increasing`);
  const parts = parseSnowflake(ids[0]!.toString());
  assert.equal(parts.workerId, 7);
  assert.equal(parts.timestampMs, Date.UTC(2026, 0, 1) + 1);
});

test('more than 4096 ids in one millisecond move on to the next millisecond', () => {
  const clock = fakeClock(Date.UTC(2026, 0, 1));
  const gen = new Snowflake({
    workerId: 1,
    clock,
    waitUntil: (ms) => {
      clock.t = ms;
    },
  });
  const ids = new Set<string>();
  for (let i = 0; i < 5000; i++) ids.add(gen.next());
  assert.equal(ids.size, 5000);
  assert.equal(clock.t, Date.UTC(2026, 0, 1) + 1);
});

test('clock moving backwards: wait policy waits, error policy throws a typed error', () => {
  const clock = fakeClock(Date.UTC(2026, 0, 1));
  const waited: number[] = [];
  const waiting = new Snowflake({
    workerId: 1,
    clock,
    waitUntil: (ms) => {
      waited.push(ms);
      clock.t = ms;
    },
  });
  const a = BigInt(waiting.next());
  clock.t -= 3;
  const b = BigInt(waiting.next());
  assert.ok(b > a);
  assert.deepEqual(waited, [Date.UTC(2026, 0, 1)]);

  const strict = new Snowflake({ workerId: 1, clock, onClockBackward: 'error' });
  strict.next();
  clock.t -= 1;
  assert.throws(() => strict.next(), { code: 'ZL_CLOCK_MOVED_BACKWARDS' });

  const bounded = new Snowflake({ workerId: 1, clock, maxBackwardMs: 10, waitUntil: () => {} });
  bounded.next();
  clock.t -= 1000;
  assert.throws(() => bounded.next(), { code: 'ZL_CLOCK_MOVED_BACKWARDS' });
});

test('worker id out of range is a config error', () => {
  assert.throws(() => new Snowflake({ workerId: 1024 }), { code: 'ZL_INVALID_CONFIG' });
  assert.throws(() => new Snowflake({ workerId: -1 }), { code: 'ZL_INVALID_CONFIG' });
});
