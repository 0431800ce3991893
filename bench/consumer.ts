import { KafkaSubscriber } from '../src/adapters/kafka/kafka-subscriber.ts';
import type { ConsumerOptions } from '../src/consumer/consumer.ts';
import { HEADER, type IncomingRecord } from '../src/core/envelope.ts';
import type { Database } from '../src/ports/sql-executor.ts';
import type { Subscriber } from '../src/ports/transport.ts';
import {
  applyEffect,
  type BenchEnv,
  benchSchema,
  createTopic,
  deleteTopics,
  rawProducer,
  rawSend,
  uniqueName,
  uniqueTopic,
  zeroRecord,
} from './lib/env.ts';
import { interleavedPaths, type Reps, type RunResult, rssSampler, until } from './lib/measure.ts';
import { BatchedRawConsumer } from './lib/batched-raw-consumer.ts';
import { RawConsumer } from './lib/raw-consumer.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { testConsumer } from '../test/helpers/test-consumer.ts';

/**
 * Keys in progress at once, the zeroloss consumer's default; the raw consumer gets the same lanes (measured:
 * 16 or 64 lanes make no difference to it, since each of its effects is a transaction of its own).
 */
export const CONSUMER_CONCURRENCY = 64;

/** Subscriber settings for the benchmarks: the defaults, with a shorter empty-fetch wait. */
export function kafkaSubscriber(env: BenchEnv): KafkaSubscriber {
  return new KafkaSubscriber({ brokers: env.brokers, clientId: 'zl-bench', maxWaitMs: 100 });
}

/** Stamps each record's arrival, so latency runs from arrival in the process to the committed effect. */
export function stamping(inner: Subscriber, onArrival: (records: IncomingRecord[]) => void): Subscriber {
  return {
    subscribe: (options) =>
      inner.subscribe({
        ...options,
        onRecords: (batch) => {
          onArrival(batch.records);
          options.onRecords(batch);
        },
      }),
  };
}

const recordId = (r: { topic: string; partition: number; offset: bigint }) => `${r.topic}\u0000${r.partition}\u0000${r.offset}`;

/** Times one path from the first record's arrival to the last effect's commit. */
class Clock {
  readonly arrived = new Map<string, number>();
  readonly latenciesMs: number[] = [];
  first = 0;
  last = 0;
  done = 0;

  arrive(records: IncomingRecord[]): void {
    const now = performance.now();
    if (this.first === 0) this.first = now;
    for (const r of records) if (!this.arrived.has(recordId(r))) this.arrived.set(recordId(r), now);
  }

  finish(r: { topic: string; partition: number; offset: bigint }): void {
    const now = performance.now();
    const at = this.arrived.get(recordId(r));
    if (at !== undefined) {
      this.latenciesMs.push(now - at);
      this.arrived.delete(recordId(r));
    }
    this.last = now;
    this.done++;
  }
}

/** Counts the transactions and autocommit statements run through `db` (each is one commit). */
function countingDatabase(inner: Database): {
  db: Database;
  counts: { transactions: number; statements: number; inTransactions: number };
} {
  const counts = { transactions: 0, statements: 0, inTransactions: 0 };
  const db: Database = {
    query: (sql, params) => {
      counts.statements++;
      return inner.query(sql, params);
    },
    transaction: (fn) => {
      counts.transactions++;
      return inner.transaction((tx) =>
        fn({
          query: (sql, params) => {
            counts.inTransactions++;
            return tx.query(sql, params);
          },
        }),
      );
    },
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
  return { db, counts };
}

/** Consumes `messages` already on the topics with the zeroloss consumer (inbox + effect in one transaction). */
export async function consumeWithZeroloss(options: {
  subscriber: Subscriber;
  db: Database;
  schema: string;
  topics: string[];
  messages: number;
  instances?: number;
  config?: Partial<ConsumerOptions['config']>;
  /** Puts the messages on the topics once every instance holds partitions (for scale runs), instead of before. */
  fill?: { partitions: number; send: () => Promise<void> };
  /** Receives one line with the run's transactions and autocommit statements per message. */
  log?: (line: string) => void;
}): Promise<RunResult> {
  const clock = new Clock();
  const counted = countingDatabase(options.db);
  const db = counted.db;
  const groupId = uniqueName('zlb-g');
  const held = new Map<number, number>();
  const consumers = Array.from({ length: options.instances ?? 1 }, (_, n) => {
    const consumer = testConsumer({
      subscriber: stamping(options.subscriber, (records) => clock.arrive(records)),
      db,
      schema: options.schema,
      config: { groupId, topics: options.topics, concurrency: CONSUMER_CONCURRENCY, ...options.config },
    });
    consumer.handle<{ amount: number }>('order.placed', async (m, ctx) => {
      await applyEffect(ctx.tx, options.schema, m.id, m.key, m.payload.amount);
    });
    consumer.on('processed', (e) => {
      if (e.outcome === 'processed') clock.finish(e);
    });
    consumer.on('assigned', (p) => held.set(n, p.length));
    consumer.on('revoked', () => held.set(n, 0));
    return consumer;
  });
  const rss = rssSampler();
  try {
    await Promise.all(consumers.map((c) => c.start()));
    if (options.fill) {
      const { partitions, send } = options.fill;
      const stable = () =>
        [...held.values()].reduce((a, b) => a + b, 0) === partitions &&
        consumers.every((_, n) => (held.get(n) ?? 0) > 0 || n >= partitions);
      await until(stable, 'every consumer instance to hold partitions', 120_000, 20);
      await send();
    }
    await until(() => clock.done >= options.messages, 'the zeroloss consumer to apply every message', 300_000);
    const { transactions, statements, inTransactions } = counted.counts;
    const perMessage = (n: number) => (n / clock.done).toFixed(2);
    options.log?.(
      `  zeroloss: ${transactions} transactions (${(clock.done / transactions).toFixed(1)} msgs each), per message: ${perMessage(transactions + statements)} commits, ${perMessage(statements)} autocommit and ${perMessage(inTransactions)} in-transaction statements (${clock.done} messages)`,
    );
  } finally {
    await Promise.all(consumers.map((c) => c.stop()));
  }
  return { messages: clock.done, seconds: (clock.last - clock.first) / 1000, latenciesMs: clock.latenciesMs, rssMb: rss.stop() };
}

/** The same effect per record without the inbox: at-least-once, duplicates would apply twice. */
export async function consumeRaw(options: {
  subscriber: Subscriber;
  db: Database;
  schema: string;
  topics: string[];
  messages: number;
  instances?: number;
}): Promise<RunResult> {
  const clock = new Clock();
  const groupId = uniqueName('zlb-raw');
  const consumers = Array.from({ length: options.instances ?? 1 }, () => {
    const raw = new RawConsumer({
      subscriber: options.subscriber,
      db: options.db,
      concurrency: CONSUMER_CONCURRENCY,
      effect: async (tx, record) => {
        const payload = JSON.parse(record.value.toString('utf8')) as { amount: number };
        await applyEffect(tx, options.schema, record.headers[HEADER.id] ?? '', record.key, payload.amount);
      },
    });
    raw.onReceived = (records) => clock.arrive(records);
    raw.onDone = (record) => clock.finish(record);
    return raw;
  });
  const rss = rssSampler();
  try {
    await Promise.all(consumers.map((c) => c.start(groupId, options.topics)));
    await until(() => clock.done >= options.messages, 'the raw consumer to apply every message', 300_000);
  } finally {
    await Promise.all(consumers.map((c) => c.stop()));
  }
  return { messages: clock.done, seconds: (clock.last - clock.first) / 1000, latenciesMs: clock.latenciesMs, rssMb: rss.stop() };
}

/**
 * The best at-least-once consumer without an inbox (#18's honest ceiling): the same subscriber and effect,
 * ready records applied in transactions of the zeroloss consumer's group-commit size, in key order.
 */
export async function consumeBatchedRaw(options: {
  subscriber: Subscriber;
  db: Database;
  schema: string;
  topics: string[];
  messages: number;
}): Promise<RunResult> {
  const clock = new Clock();
  const raw = new BatchedRawConsumer({
    subscriber: options.subscriber,
    db: options.db,
    maxMessages: 16,
    effect: async (tx, record) => {
      const payload = JSON.parse(record.value.toString('utf8')) as { amount: number };
      await applyEffect(tx, options.schema, record.headers[HEADER.id] ?? '', record.key, payload.amount);
    },
  });
  raw.onReceived = (records) => clock.arrive(records);
  raw.onDone = (record) => clock.finish(record);
  const rss = rssSampler();
  try {
    await raw.start(uniqueName('zlb-batched'), options.topics);
    await until(() => clock.done >= options.messages, 'the batched raw consumer to apply every message', 300_000);
  } finally {
    await raw.stop();
  }
  return { messages: clock.done, seconds: (clock.last - clock.first) / 1000, latenciesMs: clock.latenciesMs, rssMb: rss.stop() };
}

/** Puts `messages` zeroloss-format records on a new topic (6 partitions) with the raw producer. */
export async function filledTopic(env: BenchEnv, prefix: string, messages: number, keys: number, partitions = 6): Promise<string> {
  const topic = uniqueTopic(prefix);
  await createTopic(env, topic, partitions);
  const producer = rawProducer(env, 'zl-bench-fill');
  try {
    await rawSend(
      producer,
      Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, keys, Math.floor(i / keys) + 1)),
      500,
      2,
    );
  } finally {
    await producer.close(true);
  }
  return topic;
}

export async function consumerBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult[]> {
  const s = await benchSchema(env, 'zlb_consumer', 20);
  const topic = await filledTopic(env, 'zlb-consumer', messages, keys);
  try {
    const args = () => ({ subscriber: kafkaSubscriber(env), db: s.db, schema: s.schema, topics: [topic], messages });
    const r = await interleavedPaths(
      reps,
      {
        zeroloss: () => consumeWithZeroloss({ ...args(), log: env.log }),
        batched: () => consumeBatchedRaw(args()),
        naive: () => consumeRaw(args()),
      },
      env.log,
    );
    const common = { messages, zeroloss: r.zeroloss, latencyOf: 'message: arrival in the process to effect committed', reps: reps.reps };
    return [
      makeResult({
        ...common,
        name: 'consumer',
        baseline: r.batched,
        baselineName:
          'best at-least-once consumer: same subscriber and effect, no inbox, ready records in transactions of 16 (our group-commit size), 8 in parallel, key order kept',
        target: { metric: 'ratio', op: '>=', value: 0.7 },
      }),
      makeResult({
        ...common,
        name: 'consumer-vs-naive',
        baseline: r.naive,
        baselineName: 'naive at-least-once consumer: same subscriber, lanes and effect, one transaction per message, no inbox',
      }),
    ];
  } finally {
    await deleteTopics(env, [topic]);
    await s.drop();
  }
}
