import type { Producer } from '@platformatic/kafka';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import type { Outbox } from '../src/outbox/outbox.ts';
import { Relay } from '../src/outbox/relay.ts';
import type { Publisher } from '../src/ports/transport.ts';
import type { Database, SqlExecutor } from '../src/ports/sql-executor.ts';
import {
  type BenchEnv,
  benchSchema,
  createTopic,
  deleteTopics,
  keyOf,
  orderPayload,
  pool,
  rawProducer,
  rawSend,
  uniqueTopic,
  zeroRecord,
} from './lib/env.ts';
import { interleaved, type Reps, type RunResult, timed, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { TimedSource } from './lib/timed-source.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

export const RELAY_BATCH = 500;
export const RELAY_CONCURRENCY = 2;

/**
 * Commits `messages` outbox rows through concurrent business transactions (8 at once, 10 messages
 * each), the way an application fills the outbox. Not timed.
 */
export async function fillOutbox(options: {
  transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => Promise<T>;
  outbox: Outbox;
  topic: string;
  messages: number;
  keys: number;
  offset?: number;
  workers?: number;
}): Promise<void> {
  const perTx = 10;
  const txs = Math.ceil(options.messages / perTx);
  const base = options.offset ?? 0;
  await pool(txs, options.workers ?? 8, (t) =>
    options.transaction(async (tx) => {
      for (let j = t * perTx; j < Math.min(options.messages, (t + 1) * perTx); j++) {
        const i = base + j;
        const key = keyOf(i, options.keys);
        await options.outbox.enqueue(tx, { topic: options.topic, key, type: 'order.placed', payload: orderPayload(i, key) });
      }
    }),
  );
}

/** Starts a relay on a filled outbox and times it until every row is sent; latency is per claim round. */
export async function drainWithRelay(options: {
  db: Database;
  schema: string;
  /** One relay instance per publisher (each its own Kafka client). */
  publishers: Publisher[];
  messages: number;
}): Promise<RunResult> {
  const sources = options.publishers.map(() => new TimedSource(new PostgresOutboxStore(options.db, { schema: options.schema })));
  const relays = sources.map(
    (source, i) =>
      new Relay({
        sources: source,
        publisher: options.publishers[i] as Publisher,
        db: options.db,
        config: { batchSize: RELAY_BATCH, concurrency: RELAY_CONCURRENCY },
      }),
  );
  const errors: Error[] = [];
  for (const relay of relays) relay.on('error', (e) => errors.push(e));
  try {
    return await timed(async () => {
      await Promise.all(relays.map((r) => r.start()));
      const sent = () => sources.reduce((n, s) => n + s.sent, 0);
      await until(() => sent() >= options.messages || errors.length > 0, 'the relay to send every row');
      if (errors.length > 0) throw errors[0];
      return { messages: sent(), latenciesMs: sources.flatMap((s) => s.latenciesMs) };
    });
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
  }
}

export async function relayBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult> {
  const s = await benchSchema(env, 'zlb_relay');
  const topic = uniqueTopic('zlb-relay');
  await createTopic(env, topic, 6);
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  const publisher = new KafkaPublisher({ brokers: env.brokers, clientId: 'zl-bench-relay' });
  const producer: Producer<string, Buffer, string, string> = rawProducer(env);
  try {
    const { a, b } = await interleaved(
      reps,
      async () => {
        await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic, messages, keys });
        return drainWithRelay({ db: s.db, schema: s.schema, publishers: [publisher], messages });
      },
      async () => {
        const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, keys));
        return timed(async () => ({ messages, latenciesMs: await rawSend(producer, records, RELAY_BATCH, RELAY_CONCURRENCY) }));
      },
      env.log,
    );
    return makeResult({
      name: 'relay',
      messages,
      zeroloss: a,
      baseline: b,
      baselineName: 'raw @platformatic/kafka producer, same records, batches of 500, 2 in flight (dual write)',
      latencyOf: 'batch of 500: claim to sent recorded (relay), send to ack (raw)',
      reps: reps.reps,
      target: { metric: 'ratio', op: '>=', value: 0.8 },
    });
  } finally {
    await publisher.close().catch(() => {});
    await producer.close(true).catch(() => {});
    await deleteTopics(env, [topic]);
    await s.drop();
  }
}
