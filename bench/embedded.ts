import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../src/adapters/postgres/pglite-database.ts';
import { TableLogAdmin } from '../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../src/adapters/table-log/table-log-subscriber.ts';

import { consumeRaw, consumeWithZeroloss } from './consumer.ts';
import { ENQUEUE_WORKERS, orderTransactions } from './enqueue.ts';
import { type BenchEnv, createBusinessTables, uniqueName, zeroRecord } from './lib/env.ts';
import { interleaved, type Reps, timed } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { drainWithRelay, fillOutbox, RELAY_BATCH, RELAY_CONCURRENCY } from './relay.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

const PARTITIONS = 6;

/**
 * The embedded default (B4): one file-backed PGlite in this process holds the business tables, the
 * outbox and the table log that replaces Kafka. The same three workloads, each against its baseline on
 * that same PGlite.
 */
export async function embeddedBench(_env: BenchEnv, messages: number, reps: Reps, log: (l: string) => void): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'zlb-pglite-'));
  const pglite = new PGlite(dir);
  await pglite.waitReady;
  const db = pgliteDatabase(pglite);
  const schema = uniqueName('zlb_emb');
  try {
    await migrate(db, schema);
    await createBusinessTables(db, schema);
    const admin = new TableLogAdmin(db, { schema });
    const outbox = testOutbox({ schema, producerId: 'bench' });
    const publisher = new TableLogPublisher(db, { schema });
    const transaction = <T>(fn: Parameters<typeof db.transaction<T>>[0]) => db.transaction(fn);
    const results: BenchResult[] = [];

    log('  relay: outbox on PGlite -> table log, vs publishing the same records to the table log directly');
    const relayTopic = uniqueName('zlb-emb-relay').replace(/_/g, '-');
    await admin.createTopic(relayTopic, PARTITIONS);
    const relay = await interleaved(
      reps,
      async () => {
        await fillOutbox({ transaction, outbox, topic: relayTopic, messages, keys: 100 });
        return drainWithRelay({ db, schema, publishers: [publisher], messages });
      },
      async () => {
        const records = Array.from({ length: messages }, (_, i) => zeroRecord(relayTopic, i, 100));
        return timed(async () => {
          const latenciesMs: number[] = [];
          let next = 0;
          const loop = async () => {
            while (next < records.length) {
              const batch = records.slice(next, next + RELAY_BATCH);
              next += batch.length;
              const t0 = performance.now();
              const outcomes = await publisher.publish(batch);
              if (outcomes.some((o) => !o.ok)) throw new Error('table log publish failed');
              for (let i = 0; i < batch.length; i++) latenciesMs.push(performance.now() - t0);
            }
          };
          await Promise.all(Array.from({ length: RELAY_CONCURRENCY }, loop));
          return { messages, latenciesMs };
        });
      },
      log,
    );
    results.push(
      makeResult({
        name: 'embedded-relay',
        messages,
        zeroloss: relay.a,
        baseline: relay.b,
        baselineName: 'TableLogPublisher.publish of the same records, batches of 500, 2 in flight (dual write)',
        latencyOf: 'batch of 500: claim to sent recorded (relay), publish call (raw)',
        reps: reps.reps,
      }),
    );

    log('  enqueue: business transaction on PGlite with and without the enqueue');
    let offset = 0;
    const enqueueRun = (withOutbox: boolean) => () => {
      const start = offset;
      offset += messages;
      return timed(() =>
        orderTransactions({
          transaction,
          schema,
          transactions: messages,
          workers: ENQUEUE_WORKERS,
          offset: start,
          ...(withOutbox ? { outbox: { outbox, topic: 'orders' } } : {}),
        }),
      );
    };
    const enqueue = await interleaved(reps, enqueueRun(true), enqueueRun(false), log);
    results.push(
      makeResult({
        name: 'embedded-enqueue',
        messages,
        zeroloss: enqueue.a,
        baseline: enqueue.b,
        baselineName: 'the same business transaction without the enqueue (PGlite serialises transactions)',
        latencyOf: 'business transaction, begin to commit',
        reps: reps.reps,
        notes: 'throughput = transactions/s; time overhead = 1 / ratio',
      }),
    );

    log('  consumer: table log -> inbox + effect on PGlite, vs the same effect without the inbox');
    const consumerTopic = uniqueName('zlb-emb-consumer').replace(/_/g, '-');
    await admin.createTopic(consumerTopic, PARTITIONS);
    for (let i = 0; i < messages; i += RELAY_BATCH) {
      const batch = Array.from({ length: Math.min(RELAY_BATCH, messages - i) }, (_, j) =>
        zeroRecord(consumerTopic, i + j, 100, Math.floor((i + j) / 100) + 1),
      );
      await publisher.publish(batch);
    }
    const subscriber = () => new TableLogSubscriber(db, { schema, pollIntervalMs: 100, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 });
    const consumer = await interleaved(
      reps,
      () => consumeWithZeroloss({ subscriber: subscriber(), db, schema, topics: [consumerTopic], messages }),
      () => consumeRaw({ subscriber: subscriber(), db, schema, topics: [consumerTopic], messages }),
      log,
    );
    results.push(
      makeResult({
        name: 'embedded-consumer',
        messages,
        zeroloss: consumer.a,
        baseline: consumer.b,
        baselineName: 'same table-log subscriber, lanes and effect transaction, without the inbox',
        latencyOf: 'message: arrival in the process to effect committed',
        reps: reps.reps,
      }),
    );
    return results;
  } finally {
    await pglite.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
