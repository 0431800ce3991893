/**
 * The Redis Streams and RabbitMQ benchmarks share this driver: the zeroloss relay and consumer, built from
 * the public bundles (postgres, redisStreams / rabbitmq, createRelay, createConsumer), each measured against
 * the broker's raw client in the same run, repetitions interleaved. The raw side of each transport lives in
 * bench/redis.ts and bench/rabbitmq.ts.
 */
import { createConsumer, createOutbox, createRelay } from '../src/index.ts';
import type { IncomingRecord, OutgoingRecord, Publisher, Subscriber, Transport } from '../src/index.ts';
import { postgres } from '../src/entry/postgres.ts';
import type { Database } from '../src/ports/sql-executor.ts';
import { applyEffect, type BenchEnv, benchSchema, uniqueName, uniqueTopic, zeroRecord } from './lib/env.ts';
import { interleaved, median, type Reps, type RunResult, rssSampler, timed, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { TimedSource } from './lib/timed-source.ts';
import { CONSUMER_CONCURRENCY } from './consumer.ts';
import { drainWithWalRelay, fillOutbox, RELAY_BATCH, RELAY_CONCURRENCY, WAL_BATCH } from './relay.ts';
import { walBacklog, walBenchDatabase } from './lib/wal-database.ts';
import { insertOnlyOutbox } from './lib/insert-only-outbox.ts';

export const PARTITIONS = 6;
/** Keys the records are spread over, as in the Kafka relay and consumer benchmarks. */
const KEYS = 100;
/** Connections of each side's pool in the consumer benchmark (the Kafka consumer bench uses 20 too). */
const CONSUMER_POOL = 20;

/** What one transport brings: its bundle and the raw client's two paths. */
/** The bundle plus what the bench cleans up with: its topics, and (RabbitMQ) each group's offset queues. */
type TransportWithAdmin = Transport & {
  topicAdmin: {
    deleteTopic(topic: string): Promise<void>;
    deleteGroupOffsets?(groupId: string, topic: string, partitions: number): Promise<void>;
  };
};

export interface TransportSide {
  name: 'redis' | 'rabbitmq';
  transport(): TransportWithAdmin;
  /** Sends the records with the raw client (batches of RELAY_BATCH, RELAY_CONCURRENCY in flight); per-record latencies. */
  rawPublish(records: OutgoingRecord[]): Promise<number[]>;
  /** Reads every record of the topic from the start with the raw client, applies `effect`, acks; stops after `messages`. */
  rawConsume(topic: string, messages: number, clock: Clock, effect: (record: RawRecord) => Promise<void>): Promise<void>;
  relayBaseline: string;
  consumerBaseline: string;
  close(): Promise<void>;
}

/** A record as the raw consumer sees it, decoded from the wire by hand. */
export interface RawRecord {
  id: string;
  key: string;
  value: Buffer;
}

/** First arrival to last committed effect; per message arrival to commit. */
export class Clock {
  readonly #arrived = new Map<string, number>();
  readonly latenciesMs: number[] = [];
  first = 0;
  last = 0;
  done = 0;

  arrive(id: string): void {
    const now = performance.now();
    if (this.first === 0) this.first = now;
    if (!this.#arrived.has(id)) this.#arrived.set(id, now);
  }

  finish(id: string): void {
    const now = performance.now();
    const at = this.#arrived.get(id);
    if (at !== undefined) {
      this.latenciesMs.push(now - at);
      this.#arrived.delete(id);
    }
    this.last = now;
    this.done++;
  }

  result(rssMb: number): RunResult {
    return { messages: this.done, seconds: (this.last - this.first) / 1000, latenciesMs: this.latenciesMs, rssMb };
  }
}

const recordId = (r: { topic: string; partition: number; offset: bigint }) => `${r.topic}\u0000${r.partition}\u0000${r.offset}`;

function stamping(inner: Subscriber, clock: Clock, batchSizes: number[]): Subscriber {
  return {
    subscribe: (options) =>
      inner.subscribe({
        ...options,
        onRecords: (batch) => {
          batchSizes.push(batch.records.length);
          for (const r of batch.records as IncomingRecord[]) clock.arrive(recordId(r));
          return options.onRecords(batch);
        },
      }),
  };
}

/** The relay results' baseline: the same records sent by the transport's raw client (dual write). */
function rawRelayRun(side: TransportSide, topic: string, messages: number): Promise<RunResult> {
  const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, KEYS));
  return timed(async () => ({ messages, latenciesMs: await side.rawPublish(records) }));
}

async function transportRelayBench(env: BenchEnv, side: TransportSide, messages: number, reps: Reps): Promise<BenchResult> {
  const s = await benchSchema(env, `zlb_${side.name}_relay`);
  const store = postgres(env.pgUrl, { schema: s.schema });
  const transport = side.transport();
  const topic = uniqueTopic(`zlb-${side.name}-relay`);
  await transport.ensureTopic(topic, PARTITIONS);
  const outbox = createOutbox({ store, producerId: 'bench' });
  const claimMs: number[] = [];
  const publishMs: number[] = [];
  try {
    const { a, b } = await interleaved(
      reps,
      async (rep) => {
        await fillOutbox({ transaction: (fn) => store.transaction(fn), outbox, topic, messages, keys: KEYS });
        const source = new TimedSource(store.relaySource);
        const measured = rep >= reps.warmup;
        // Where a round's time goes: the claim (Postgres), the publish (broker), the rest is markSent.
        const publisher: Publisher = {
          publish: async (records) => {
            const t0 = performance.now();
            const outcomes = await transport.publisher.publish(records);
            if (measured) publishMs.push(performance.now() - t0);
            return outcomes;
          },
          // The bundle's close closes it, after the last repetition.
          close: async () => {},
        };
        const relay = createRelay({
          store,
          transport: { ...transport, publisher },
          sources: [source],
          batchSize: RELAY_BATCH,
          concurrency: RELAY_CONCURRENCY,
        });
        const errors: Error[] = [];
        relay.on('error', (e) => errors.push(e));
        relay.on('round', (r) => {
          if (measured && r.claimed > 0) claimMs.push(r.claimMs);
        });
        try {
          return await timed(async () => {
            await relay.start();
            await until(() => source.sent >= messages || errors.length > 0, 'the relay to send every row');
            if (errors.length > 0) throw errors[0];
            return { messages: source.sent, latenciesMs: source.latenciesMs };
          });
        } finally {
          await relay.stop();
        }
      },
      () => rawRelayRun(side, topic, messages),
      env.log,
    );
    return makeResult({
      name: `${side.name}-relay`,
      messages,
      zeroloss: a,
      baseline: b,
      baselineName: side.relayBaseline,
      latencyOf: `batch of ${RELAY_BATCH}: claim to sent recorded (relay), send to last ack (raw)`,
      reps: reps.reps,
      target: { metric: 'ratio', op: '>=', value: 0.5 },
      notes:
        `relay round of ${RELAY_BATCH}, medians over the measured reps: claim ${median(claimMs).toFixed(0)} ms, ` +
        `publish ${median(publishMs).toFixed(0)} ms, claim to sent recorded ${a.p50Ms.toFixed(0)} ms; raw batch ${b.p50Ms.toFixed(0)} ms`,
    });
  } finally {
    await transport.topicAdmin.deleteTopic(topic).catch(() => {});
    await transport.close().catch(() => {});
    await store.close().catch(() => {});
    await s.drop();
  }
}

/**
 * The WAL relay (docs/wal-relay.md) to this transport against the same raw client: a throwaway PostgreSQL
 * with wal_level=logical, a fresh slot and a committed backlog per repetition (as the Kafka `relay-wal`
 * result), drained by the WAL relay through the transport's publisher, timed from the slot streaming to
 * the last row sent and recorded.
 */
async function transportWalRelayBench(env: BenchEnv, side: TransportSide, messages: number, reps: Reps): Promise<BenchResult[]> {
  const db = await walBenchDatabase(env, `bench-${side.name}-wal`, `zlb_${side.name}_wal`);
  const { store, wal } = db;
  const transport = side.transport();
  const topic = uniqueTopic(`zlb-${side.name}-wal`);
  await transport.ensureTopic(topic, PARTITIONS);
  const outbox = createOutbox({ store, producerId: 'bench' });
  let offset = 0;
  try {
    const fill = async () => {
      await fillOutbox({ transaction: (fn) => store.transaction(fn), outbox, topic, messages, keys: KEYS, offset });
      offset += messages;
    };
    const { a, b } = await interleaved(
      reps,
      async () => {
        await walBacklog(db, fill);
        return drainWithWalRelay({ wal, publisher: transport.publisher, messages });
      },
      () => rawRelayRun(side, topic, messages),
      env.log,
    );
    // The shipped insert-only mode (relay --mode wal --create-slot --insert-only): one row per batch records the sends.
    const listed = await interleaved(
      reps,
      async () => {
        await walBacklog(db, fill, { insertOnly: true });
        return drainWithWalRelay({ wal, publisher: transport.publisher, messages });
      },
      () => rawRelayRun(side, topic, messages),
      env.log,
    );
    // The same relay on the insert-only floor (bench/lib/insert-only-outbox.ts), as the Kafka relay bench
    // measures it: how far an insert-only outbox (issue #14 item 4) could take the relay to this broker.
    const insertOnly = await insertOnlyOutbox(db);
    const floor = await interleaved(
      reps,
      async () => {
        await insertOnly.fill(topic, messages, KEYS);
        return drainWithWalRelay({ wal, stream: insertOnly.stream, ledger: insertOnly.ledger, publisher: transport.publisher, messages });
      },
      () => rawRelayRun(side, topic, messages),
      env.log,
    ).finally(() => insertOnly.close());
    const latencyOf = `batch of up to ${WAL_BATCH} (whole transactions): interval between recorded batches (WAL relay), send to last ack (raw)`;
    return [
      makeResult({
        name: `${side.name}-relay-wal`,
        messages,
        zeroloss: a,
        baseline: b,
        baselineName: side.relayBaseline,
        latencyOf,
        reps: reps.reps,
        target: { metric: 'ratio', op: '>=', value: 0.5 },
        notes:
          'throwaway PostgreSQL, wal_level=logical, WAL relay with the Kafka relay-wal settings; the raw side as for the polling relay',
      }),
      makeResult({
        name: `${side.name}-relay-wal-insert-only`,
        messages,
        zeroloss: listed.a,
        baseline: listed.b,
        baselineName: side.relayBaseline,
        latencyOf,
        reps: reps.reps,
        target: { metric: 'ratio', op: '>=', value: 0.5 },
        notes:
          'the WAL relay on the insert-only outbox (relay --mode wal --create-slot --insert-only): one outbox_wal_batch row per batch records the sends',
      }),
      makeResult({
        name: `${side.name}-relay-wal-insert-only-floor`,
        messages,
        zeroloss: floor.a,
        baseline: floor.b,
        baselineName: side.relayBaseline,
        latencyOf,
        reps: reps.reps,
        notes:
          'not a shipped mode: the same WAL relay streaming from a primary-key-only outbox filled by plain inserts, one INSERT per batch as its record (bench/lib/insert-only-outbox.ts); the most an insert-only outbox (issue #14 item 4) could give with this relay and broker',
      }),
    ];
  } finally {
    await transport.topicAdmin.deleteTopic(topic).catch(() => {});
    await transport.close().catch(() => {});
    await db.close();
  }
}

async function consumeWithZeroloss(
  env: BenchEnv,
  transport: TransportWithAdmin,
  schema: string,
  topic: string,
  messages: number,
  batchSizes: number[],
): Promise<RunResult> {
  const clock = new Clock();
  const store = postgres(env.pgUrl, { schema, max: CONSUMER_POOL });
  const groupId = uniqueName('zlb-g');
  const consumer = createConsumer({
    store,
    transport: { subscriber: stamping(transport.subscriber, clock, batchSizes), publisher: transport.publisher },
    groupId,
    topics: [topic],
    concurrency: CONSUMER_CONCURRENCY,
  });
  consumer.handle<{ amount: number }>('order.placed', async (m, ctx) => {
    await applyEffect(ctx.tx, schema, m.id, m.key, m.payload.amount);
  });
  consumer.on('processed', (e) => {
    if (e.outcome === 'processed') clock.finish(recordId(e));
  });
  const rss = rssSampler();
  try {
    await consumer.start();
    await until(() => clock.done >= messages, 'the zeroloss consumer to apply every message', 300_000);
  } finally {
    await consumer.stop();
    await store.close().catch(() => {});
    // A new group per repetition: on RabbitMQ each leaves a quorum offset queue per partition, kept 7 days
    // unused; hundreds of them left by earlier runs made the shared broker unresponsive (docs/benchmarks.md).
    await transport.topicAdmin.deleteGroupOffsets?.(groupId, topic, PARTITIONS).catch(() => {});
  }
  return clock.result(rss.stop());
}

async function consumeRaw(side: TransportSide, db: Database, schema: string, topic: string, messages: number): Promise<RunResult> {
  const clock = new Clock();
  const rss = rssSampler();
  await side.rawConsume(topic, messages, clock, async (record) => {
    const payload = JSON.parse(record.value.toString('utf8')) as { amount: number };
    await db.transaction((tx) => applyEffect(tx, schema, record.id, record.key, payload.amount));
  });
  return clock.result(rss.stop());
}

async function transportConsumerBench(env: BenchEnv, side: TransportSide, messages: number, reps: Reps): Promise<BenchResult> {
  const s = await benchSchema(env, `zlb_${side.name}_consumer`, CONSUMER_POOL);
  const transport = side.transport();
  const topic = uniqueTopic(`zlb-${side.name}-consumer`);
  await transport.ensureTopic(topic, PARTITIONS);
  try {
    // Filled once through the zeroloss publisher, so both consumers read the same bytes; each repetition
    // reads the whole topic from the start under a new group.
    const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, KEYS, Math.floor(i / KEYS) + 1));
    for (let i = 0; i < records.length; i += RELAY_BATCH) {
      const outcomes = await transport.publisher.publish(records.slice(i, i + RELAY_BATCH));
      const failed = outcomes.find((o) => !o.ok);
      if (failed && !failed.ok) throw failed.error;
    }
    const batchSizes: number[] = [];
    const { a, b } = await interleaved(
      reps,
      (rep) => consumeWithZeroloss(env, transport, s.schema, topic, messages, rep >= reps.warmup ? batchSizes : []),
      () => consumeRaw(side, s.db, s.schema, topic, messages),
      env.log,
    );
    return makeResult({
      name: `${side.name}-consumer`,
      messages,
      zeroloss: a,
      baseline: b,
      baselineName: side.consumerBaseline,
      latencyOf: 'message: arrival in the process to effect committed',
      reps: reps.reps,
      target: { metric: 'ratio', op: '>=', value: 0.6 },
      notes:
        `the zeroloss subscriber handed the consumer ${batchSizes.length} batches over the measured reps, ` +
        `median ${median(batchSizes)} records, largest ${Math.max(0, ...batchSizes)}`,
    });
  } finally {
    await transport.topicAdmin.deleteTopic(topic).catch(() => {});
    await transport.close().catch(() => {});
    await s.drop();
  }
}

/**
 * The results of one transport (`npm run bench -- redis|rabbitmq`): the polling relay, the WAL relay (and
 * the insert-only floor beside it) and the consumer, each against the transport's raw client, each on a side of its own closed afterwards.
 */
export async function transportBenches(side: () => TransportSide, env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const bench of [transportRelayBench, transportWalRelayBench, transportConsumerBench]) {
    const own = side();
    try {
      results.push(...[await bench(env, own, messages, reps)].flat());
    } finally {
      await own.close();
    }
  }
  return results;
}
