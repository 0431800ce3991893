import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TimedSource } from '../../../bench/lib/timed-source.ts';
import type { RelaySource } from '../../../src/ports/outbox-store.ts';

/** A source with nothing to send; `withCheck` gives it the cheap check the Postgres outbox has. */
function emptySource(withCheck: boolean): RelaySource & { checks: number } {
  const source = {
    name: 'outbox',
    wakeChannel: undefined,
    checks: 0,
    claim: async () => [],
    markSent: async () => {},
    markFailed: async () => [],
    backlog: async () => ({ pending: 0, failed: 0, parked: 0, oldestPendingAgeMs: 0 }),
  };
  if (!withCheck) return source as unknown as RelaySource & { checks: number };
  return Object.assign(source, {
    async anyDue() {
      source.checks++;
      return { due: false, newest: '7' };
    },
  }) as unknown as RelaySource & { checks: number };
}

// The relay runs another loop for a source without the cheap check; the benchmarks' timing wrapper must not
// turn the Postgres outbox into such a source (it did: the relay benchmarks timed a relay no user runs).
test('TimedSource keeps the cheap check of the source it wraps, and adds none to a source without one', async () => {
  const polled = emptySource(true);
  const timed = new TimedSource(polled);
  assert.equal(typeof timed.anyDue, 'function');
  assert.deepEqual(await timed.anyDue?.(), { due: false, newest: '7' });
  assert.equal(polled.checks, 1);
  assert.equal(new TimedSource(emptySource(false)).anyDue, undefined);
});
