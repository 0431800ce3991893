import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZerolossError } from '../../../src/core/errors.ts';
import { WalRelay } from '../../../src/outbox/wal-relay.ts';
import type { PublishOutcome, Publisher } from '../../../src/ports/transport.ts';
import type { WalCommit, WalLedger, WalStream, WalStreamHandler } from '../../../src/ports/wal-stream.ts';
import { idleRetrySource } from '../../helpers/idle-retry-source.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * One reading of the slot ends (walsender killed, failover, Postgres restart) while two batches are out: the
 * later one's record fails at once, the earlier one's record is between retries. The reading must not end
 * before that earlier record settles. It did: the record went on retrying inside the next reading, and when
 * it finally succeeded it counted its batch off the next reading's unconfirmed batches, so that reading
 * told the stream it was caught up while a batch of its own was out, and a keepalive confirmed the slot past
 * that batch before it was sent (an adversarial review reproduced the loss against a real slot).
 */
function row(ref: string, key: string) {
  return { ref, messageId: `m-${ref}`, record: { topic: 't', key, headers: {}, value: Buffer.from(ref) } };
}

function commit(endLsn: string, ref: string): WalCommit {
  return { endLsn, rows: [row(ref, `k-${ref}`)] };
}

test('a reading ends only once every record of it settled: none finishes inside the next reading', async () => {
  const log: string[] = [];
  const handlers: WalStreamHandler[] = [];
  let streamEnded = false;
  let aMaySucceed = false;
  const stream: WalStream = {
    slot: 'test_slot',
    async open(handler) {
      handlers.push(handler);
      const reading = handlers.length;
      log.push(`open r${reading}`);
      // From the second reading on, the database is back: the first batch's record would go through.
      if (reading > 1) aMaySucceed = true;
      return {
        acknowledge: async (lsn) => {
          log.push(`ack r${reading} ${lsn}`);
        },
        pause: () => {},
        resume: () => {},
        close: async () => {
          log.push(`close r${reading}`);
        },
      };
    },
  };
  const retrySource = idleRetrySource();
  const ledger: WalLedger = {
    retrySource,
    async record(sent, _failed, batch) {
      const lsn = batch?.endLsn ?? '-';
      log.push(`record ${lsn}`);
      if (lsn === 'A' && !aMaySucceed) throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'database restarting (test)', { retryable: true });
      if (lsn === 'B') {
        await waitFor(() => streamEnded, { what: 'the stream to end', intervalMs: 5 });
        throw new ZerolossError('ZL_STORE_UNAVAILABLE', 'connection reset (test)', { retryable: true });
      }
      return { sent: sent.length };
    },
    heldKeys: async () => new Set(),
  };
  /** Publishes of C wait until released: a batch out while the second reading is asked whether it caught up. */
  let releaseC: (() => void) | undefined;
  const publisher: Publisher = {
    async publish(records) {
      return Promise.all(
        records.map(async (record, i): Promise<PublishOutcome> => {
          log.push(`publish ${String(record.value)}`);
          if (String(record.value) === 'c') await new Promise<void>((resolve) => (releaseC = resolve));
          return { ok: true, partition: 0, offset: BigInt(i) };
        }),
      );
    },
    close: async () => {},
  };
  const relay = new WalRelay({
    stream,
    ledger,
    publisher,
    config: { walBatchSize: 1, publishConcurrency: 1, batchesInFlight: 3, standbyRetryMs: 50 },
    relay: { pollIntervalMs: 60_000 },
  });
  relay.on('error', () => {});
  const count = (entry: string) => log.filter((l) => l === entry).length;
  try {
    await relay.start();
    await waitFor(() => handlers.length === 1, { what: 'the first reading' });
    const first = handlers[0] as WalStreamHandler;
    first.commit(commit('A', 'a'));
    first.commit(commit('B', 'b'));
    // A's record has failed three times (the relay now waits 400 ms before its next try); B's waits.
    await waitFor(() => count('record A') >= 3 && count('record B') === 1, { what: "A's third try and B's record", timeoutMs: 10_000 });
    streamEnded = true;
    first.end(new Error('walsender ended (test)'));
    // Both happen either way: the first reading closes, and A is tried once more.
    await waitFor(() => count('close r1') === 1 && count('record A') >= 4, {
      what: 'the first reading closed, A tried again',
      timeoutMs: 10_000,
    });
    assert.ok(
      log.indexOf('close r1') > log.lastIndexOf('record A'),
      `A's record was still retrying when its reading closed:\n${log.join('\n')}`,
    );
    // The second reading: a batch out, so it is not caught up, whatever the first reading's records did.
    await waitFor(() => handlers.length === 2, { what: 'the second reading' });
    const second = handlers[1] as WalStreamHandler;
    second.commit(commit('C', 'c'));
    await waitFor(() => count('publish c') === 1, { what: 'C published' });
    assert.equal(second.caughtUp(), false, `caught up with C out:\n${log.join('\n')}`);
    assert.ok(!log.slice(log.indexOf('close r1')).includes('ack r1 A'), 'nothing acknowledged on the closed reading');
  } finally {
    releaseC?.();
    await relay.stop();
  }
});
