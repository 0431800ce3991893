import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZerolossError } from '../../../src/core/errors.ts';
import { relayReadiness } from '../../../src/outbox/relay-readiness.ts';
import { Relay } from '../../../src/outbox/relay.ts';
import type { ClaimedRow, RelaySource } from '../../../src/ports/outbox-store.ts';
import type { Publisher, PublishOutcome } from '../../../src/ports/transport.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const row: ClaimedRow = {
  ref: '1',
  messageId: 'm1',
  record: { topic: 't', key: 'k', value: Buffer.from('{}'), headers: {} },
  attempt: 1,
  state: 0 as ClaimedRow['state'],
};

/** A source whose claim answers one row when `rows` says so, and hangs while `hang` is set. */
function scriptedSource(script: { rows: boolean; hang: Promise<void> | undefined }): RelaySource {
  return {
    name: 'outbox',
    wakeChannel: undefined,
    async claim() {
      if (script.hang) await script.hang;
      return script.rows ? [row] : [];
    },
    async markSent() {},
    async markFailed() {
      return [];
    },
    async backlog() {
      return { pending: 0, failed: 0, parked: 0, oldestUnsentAgeMs: 0, nextDueInMs: undefined };
    },
  };
}

const noDb = { query: async () => ({ rows: [] }) };
const config = { leaseMs: 100, idleIntervalMs: 10, backlogIntervalMs: 10, concurrency: 1 };

test('a claim loop inside one turn for longer than the lease is not ready; it is again once the turn ends', async () => {
  let release = () => {};
  const script = { rows: false, hang: undefined as Promise<void> | undefined };
  const publisher: Publisher = { publish: async (records) => records.map(() => ({ ok: true })), close: async () => {} };
  const relay = new Relay({ sources: scriptedSource(script), publisher, config });
  const checks = relayReadiness(relay, noDb);
  assert.deepEqual(await checks.loop?.(), { ok: false, detail: 'the relay is not running' });
  await relay.start();
  try {
    await waitFor(async () => (await checks.loop?.())?.ok, { what: 'loop ready' });
    script.hang = new Promise((resolve) => {
      release = resolve;
    });
    const stuck = await waitFor(
      async () => {
        const r = await checks.loop?.();
        return r?.ok === false ? r : undefined;
      },
      { what: 'stuck loop reported' },
    );
    assert.match(stuck.detail ?? '', /in one turn for \d+ ms \(lease 100 ms\)/);
    script.hang = undefined;
    release();
    await waitFor(async () => (await checks.loop?.())?.ok, { what: 'loop ready again' });
  } finally {
    release();
    await relay.stop();
  }
});

test('a send that finds no broker is not ready until a send reaches it', async () => {
  const script = { rows: true, hang: undefined };
  let reachable = false;
  const publisher: Publisher = {
    publish: async (records) =>
      records.map(
        (): PublishOutcome =>
          reachable
            ? { ok: true }
            : { ok: false, attempted: true, error: new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'no broker', { retryable: true }) },
      ),
    close: async () => {},
  };
  const relay = new Relay({ sources: scriptedSource(script), publisher, config });
  const checks = relayReadiness(relay, noDb);
  assert.deepEqual(await checks.broker?.(), { ok: true });
  await relay.start();
  try {
    const down = await waitFor(
      async () => {
        const r = await checks.broker?.();
        return r?.ok === false ? r : undefined;
      },
      { what: 'broker reported unreachable' },
    );
    assert.equal(down.detail, 'the last send of outbox found no broker reachable');
    reachable = true;
    await waitFor(async () => (await checks.broker?.())?.ok, { what: 'broker ready again' });
  } finally {
    await relay.stop();
  }
});
