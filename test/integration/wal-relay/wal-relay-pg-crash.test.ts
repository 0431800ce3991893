import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic, enqueueWorkload } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * A Postgres crash restart (immediate stop, no checkpoint) while the WAL relay streams and writers commit:
 * the slot's confirmed position comes back from the last checkpoint, so the relay replays (duplicates)
 * and skips nothing. Counts come from the outbox table and from reading the topic back.
 */
let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });
before(async () => {
  instance = await startWalPostgres('crash');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
});

test('the WAL relay loses nothing across two Postgres crash restarts', async () => {
  const s = await walSchema(instance.url);
  const topic = uniqueTopic('zl-wal-pg-crash');
  await createTopic(topic, 4);
  const relay = createRelay({ mode: 'wal', wal: s.wal, transport, walBatchSize: 200 });
  let batches = 0;
  relay.on('batch', () => batches++);
  try {
    await relay.start();
    const writing = enqueueWorkload({
      pool: s.pool,
      outbox: testOutbox({ schema: s.schema }),
      topic,
      messages: 800,
      keys: 40,
      workers: 6,
      rollbackRate: 0.05,
      seed: 1515,
    });
    for (let crash = 0; crash < 2; crash++) {
      const at = batches;
      await waitFor(() => batches > at, { what: 'the relay sending before the crash', timeoutMs: 15_000 });
      await instance.restart('immediate');
    }
    const workload = await writing;
    const ids = await outboxIds(s.pool, s.schema);
    const records = await readTopic(topic, { done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size, timeoutMs: 20_000 });
    const check = checkTopic(ids, workload.rolledBack, records);
    console.log(
      `committed ${check.committed} (unknown outcome ${workload.unknown.size}), on topic ${check.onTopic}, duplicates ${check.duplicates}`,
    );
    assert.deepEqual(
      { lost: check.lost.length, phantom: check.phantom.length, orderViolations: check.orderViolations },
      { lost: 0, phantom: 0, orderViolations: 0 },
    );
  } finally {
    await relay.stop();
    await s.cleanup();
  }
});
