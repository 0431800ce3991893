import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type PostgresInstance, startPostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { PublishOutcome, Publisher } from '../../../src/ports/transport.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { walSchema } from './wal-postgres.ts';

/**
 * The server ends a replication reader it has not heard from for wal_sender_timeout. While batches are out
 * and flow control holds the socket paused, the server's keepalive requests wait unread, so the relay must
 * report its position on its own timer: otherwise a reader whose batches take longer than the timeout is
 * cut off before it confirms anything, and replays the same backlog again and again.
 */
let instance: PostgresInstance;

before(async () => {
  instance = await startPostgresInstance({
    port: await freePort(),
    name: 'wal-status',
    settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10, wal_sender_timeout: '2s' },
  });
});
after(async () => {
  await instance?.stop('fast');
});

/** A broker that takes 2.5 s to confirm each batch: longer than the server's timeout. */
const slowPublisher: Publisher = {
  async publish(records) {
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    return records.map((_, i): PublishOutcome => ({ ok: true, partition: 0, offset: BigInt(i) }));
  },
  close: async () => {},
};

test('a reader whose batches outlast wal_sender_timeout keeps its session: one reading, every row sent', async () => {
  const s = await walSchema(instance.url);
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher: slowPublisher },
    walBatchSize: 40,
    maxBufferedRows: 20,
    batchesInFlight: 1,
  });
  let sessions = 0;
  let sent = 0;
  relay.on('slot', (e) => {
    if (e.state === 'streaming') sessions++;
  });
  relay.on('batch', (b) => {
    sent += b.sent;
  });
  try {
    const outbox = testOutbox({ schema: s.schema, producerId: 'status' });
    for (let t = 0; t < 12; t++) {
      await s.store.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await outbox.enqueue(tx, { topic: 'status', key: `k${i}`, type: 'tick', payload: { t, i } });
      });
    }
    await relay.start();
    await waitFor(() => sent >= 120, { timeoutMs: 60_000, what: 'every row sent' });
    assert.equal(sessions, 1, 'the server never ended the reading');
  } finally {
    await relay.stop();
    await s.cleanup();
  }
});
