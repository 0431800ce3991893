import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZerolossError } from '../../../src/core/errors.ts';
import { Relay } from '../../../src/outbox/relay.ts';
import type { ClaimedRow, RelaySource, SentOutcome } from '../../../src/ports/outbox-store.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * An outbox of `total` rows over `keys` keys that claims like the SQL one: the oldest unleased rows, except
 * rows of a key another claim holds rows of (they would overtake them). Counts claims, empty ones, and the most rounds in flight at once.
 */
function keyedSource(total: number, keys: number) {
  /** Row -> when its lease ends (performance.now()); an ended lease frees the row, as the SQL claim does. */
  const leased = new Map<number, number>();
  const sent = new Set<number>();
  const stats = { claims: 0, empty: 0, inFlight: 0, maxInFlight: 0, order: [] as number[] };
  const source: RelaySource = {
    name: 'outbox',
    wakeChannel: undefined,
    async claim(_owner, limit, leaseMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      stats.claims++;
      for (const [i, until] of leased) if (until <= performance.now()) leased.delete(i);
      const heldKeys = new Set([...leased.keys()].map((i) => i % keys));
      const rows: ClaimedRow[] = [];
      for (let i = 0; i < total && rows.length < limit; i++) {
        if (sent.has(i) || leased.has(i)) continue;
        if (heldKeys.has(i % keys)) continue;
        rows.push({
          ref: String(i),
          messageId: `m${i}`,
          attempt: 1,
          state: 0 as ClaimedRow['state'],
          record: { topic: 't', key: `k${i % keys}`, value: Buffer.from('{}'), headers: {} },
        });
      }
      for (const r of rows) leased.set(Number(r.ref), performance.now() + leaseMs);
      if (rows.length === 0) stats.empty++;
      else stats.maxInFlight = Math.max(stats.maxInFlight, ++stats.inFlight);
      return rows;
    },
    async markSent(_owner, outcomes: SentOutcome[]) {
      for (const o of outcomes) {
        leased.delete(Number(o.ref));
        sent.add(Number(o.ref));
        stats.order.push(Number(o.ref));
      }
      if (outcomes.length > 0) stats.inFlight--;
    },
    async markFailed() {
      return [];
    },
    async backlog() {
      const pending = total - sent.size;
      return { pending, failed: 0, parked: 0, oldestUnsentAgeMs: 0, nextDueInMs: pending > 0 ? 0 : undefined };
    },
  };
  return { source, stats, sent };
}

/** A broker that takes a few milliseconds per batch. */
const publisher: Publisher = {
  publish: async (records) => {
    await new Promise<void>((resolve) => setTimeout(resolve, 3));
    return records.map(() => ({ ok: true as const }));
  },
  close: async () => {},
};

const config = { concurrency: 2, batchSize: 10, idleIntervalMs: 60_000, backlogIntervalMs: 60_000 };

test('a backlog of one key: the second loop, held back by the first loop’s round, stops claiming in vain', async () => {
  const { source, stats, sent } = keyedSource(400, 1);
  const relay = new Relay({ sources: source, publisher, config });
  await relay.start();
  try {
    relay.wake();
    await waitFor(() => sent.size === 400, { what: 'every row sent' });
  } finally {
    await relay.stop();
  }
  // 40 full rounds. Before, every full round woke the other loop into a claim that found the key held: one
  // empty claim per round (43 for 40 useful ones measured); now the held-back loop sits out (3 measured).
  assert.ok(stats.empty <= 4, `${stats.empty} empty claims for ${stats.claims - stats.empty} useful ones`);
  assert.deepEqual(
    stats.order,
    stats.order.toSorted((a, b) => a - b),
    'the key in order',
  );
});

test('a backlog of many keys keeps both loops claiming at once', async () => {
  const { source, stats, sent } = keyedSource(2_000, 2_000);
  const relay = new Relay({ sources: source, publisher, config });
  await relay.start();
  try {
    relay.wake();
    await waitFor(() => sent.size === 2_000, { what: 'every row sent' });
  } finally {
    await relay.stop();
  }
  assert.equal(stats.maxInFlight, 2, 'two rounds in flight at once');
});

test('two instances on a backlog of one key: the one whose claims find the key held backs off instead of claiming every poll', async () => {
  const { source, stats, sent } = keyedSource(300, 1);
  /** Per owner: when each claim ended and how many rows it took. */
  const claims = new Map<string, Array<{ at: number; rows: number }>>();
  const shared: RelaySource = {
    ...source,
    async claim(owner, limit, leaseMs) {
      const rows = await source.claim(owner, limit, leaseMs);
      claims.set(owner, [...(claims.get(owner) ?? []), { at: performance.now(), rows: rows.length }]);
      return rows;
    },
    // Another instance's rows cannot be seen from here: the cheap check says rows are due while any is unsent
    // and unleased, as the SQL one does; no row is added during the run.
    async anyDue() {
      return { due: sent.size < 300, newest: '299' };
    },
  };
  const slow: Publisher = {
    publish: async (records) => {
      await new Promise<void>((resolve) => setTimeout(resolve, 15));
      return records.map(() => ({ ok: true as const }));
    },
    close: async () => {},
  };
  const settings = { ...config, concurrency: 1, pollIntervalMs: 20 };
  const relays = [
    new Relay({ sources: shared, publisher: slow, config: settings }),
    new Relay({ sources: shared, publisher: slow, config: settings }),
  ];
  await Promise.all(relays.map((r) => r.start()));
  try {
    await waitFor(() => sent.size === 300, { what: 'every row sent' });
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
  }
  assert.deepEqual(
    stats.order,
    stats.order.toSorted((a, b) => a - b),
    'the key in order',
  );
  // Before, an instance whose claim came back empty claimed again at the next poll (20 ms) for as long as the
  // other held the key: the gaps between its empty claims stayed at the poll interval. Now each gap is at
  // least twice the one before (20 ms x 2^n, up to a second). Timers only ever fire late, so these are floors.
  let runs = 0;
  for (const list of claims.values()) {
    let streak = 0;
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1] as { at: number; rows: number };
      const cur = list[i] as { at: number; rows: number };
      streak = prev.rows === 0 ? streak + 1 : 0;
      if (streak === 0) continue;
      runs++;
      const floor = Math.min(20 * 2 ** streak, 1_000);
      assert.ok(
        cur.at - prev.at >= floor - 2,
        `claim after ${streak} empty one(s) came ${(cur.at - prev.at).toFixed(1)} ms after the last (floor ${floor} ms)`,
      );
    }
  }
  assert.ok(runs >= 2, `the test saw ${runs} claims after an empty one: no contention to check`);
});

test('the instance that backs off takes the key over once its frozen holder’s lease ends, with no row added', async () => {
  const { source, sent } = keyedSource(100, 1);
  const claimers = new Map<string, number>();
  const shared: RelaySource = {
    ...source,
    async claim(owner, limit, leaseMs) {
      const rows = await source.claim(owner, limit, leaseMs);
      if (rows.length > 0) claimers.set(owner, (claimers.get(owner) ?? 0) + rows.length);
      return rows;
    },
    async anyDue() {
      return { due: sent.size < 100, newest: '99' };
    },
  };
  let thaw: () => void = () => {};
  const thawed = new Promise<void>((resolve) => {
    thaw = resolve;
  });
  // The holder's broker call never answers until the end of the test: its lease runs out with the round in hand.
  const frozen: Publisher = {
    publish: async (records) => {
      await thawed;
      return records.map(() => ({ ok: false as const, error: new ZerolossError('ZL_SEND_FAILED', 'thawed'), attempted: false }));
    },
    close: async () => {},
  };
  const settings = { ...config, concurrency: 1, pollIntervalMs: 20, leaseMs: 300 };
  const holder = new Relay({ sources: shared, publisher: frozen, config: settings });
  const other = new Relay({ sources: shared, publisher, config: settings });
  await holder.start();
  try {
    await waitFor(() => claimers.size === 1, { what: 'the holder to claim the key' });
    await other.start();
    // Its claims come back empty while the lease lives, so it backs off; no row is added, so only the back-off
    // running out brings it back to claim. If the back-off never ended, this would time out.
    await waitFor(() => sent.size === 100, { what: 'the other instance to send every row' });
  } finally {
    thaw();
    await Promise.all([holder.stop(), other.stop()]);
  }
  assert.equal(claimers.size, 2, 'both instances claimed');
});
