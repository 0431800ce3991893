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
import type { PostgresWal } from '../src/adapters/postgres/wal/postgres-wal.ts';
import { walBacklog, walBenchDatabase } from './lib/wal-database.ts';
import { WalRelay } from '../src/outbox/wal-relay.ts';
import type { WalLedger, WalStream } from '../src/ports/wal-stream.ts';
import { insertOnlyOutbox } from './lib/insert-only-outbox.ts';

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

export const WAL_BATCH = 2_000;

/**
 * The WAL relay (docs/wal-relay.md) draining a backlog of `messages` committed rows from its slot: started
 * on a filled outbox, timed until every row is sent and recorded. Latency: one batch, from the previous
 * batch's record to this one's (publish + record, overlapped with the next publish).
 */
export async function drainWithWalRelay(options: {
  wal: PostgresWal;
  ledger?: WalLedger;
  /** Another slot's stream than the outbox's (the insert-only floor). */
  stream?: WalStream;
  publisher: Publisher;
  messages: number;
}) {
  const relay = new WalRelay({
    stream: options.stream ?? options.wal.stream,
    ledger: options.ledger ?? options.wal.ledger,
    publisher: options.publisher,
    config: { walBatchSize: WAL_BATCH },
  });
  const errors: Error[] = [];
  relay.on('error', (e) => errors.push(e));
  let sent = 0;
  const latenciesMs: number[] = [];
  // Timed from the moment the relay holds the slot: opening the replication connection (once per process
  // start, ~0.1-0.5 s here) is not part of the throughput being compared.
  let streamingAt = 0;
  const streaming = new Promise<void>((resolve) =>
    relay.on('slot', (e) => {
      if (e.state !== 'streaming') return;
      streamingAt = performance.now();
      last = streamingAt;
      resolve();
    }),
  );
  let last = 0;
  relay.on('batch', (b) => {
    sent += b.sent + b.resent;
    const now = performance.now();
    latenciesMs.push(now - last);
    last = now;
  });
  try {
    const started = relay.start();
    await started;
    await streaming;
    return await timed(async () => {
      await until(() => sent >= options.messages || errors.length > 0, 'the WAL relay to send every row');
      if (errors.length > 0) throw errors[0];
      return { messages: sent, latenciesMs, seconds: (performance.now() - streamingAt) / 1000 };
    });
  } finally {
    await relay.stop();
  }
}

/**
 * The WAL relay against the raw producer, interleaved, on a throwaway PostgreSQL with wal_level=logical
 * (the shared server keeps its settings). Two comparisons in one run: the relay as shipped (one UPDATE per
 * batch records what was sent), and the same relay with that statement left out, which prices the record.
 */
export async function walRelayBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult[]> {
  const db = await walBenchDatabase(env, 'bench-wal', 'zlb_wal');
  const { s, wal } = db;
  const topic = uniqueTopic('zlb-wal-relay');
  await createTopic(env, topic, 6);
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  const publisher = new KafkaPublisher({ brokers: env.brokers, clientId: 'zl-bench-wal-relay' });
  const producer: Producer<string, Buffer, string, string> = rawProducer(env);
  let offset = 0;
  const fill = (insertOnly = false) =>
    walBacklog(
      db,
      async () => {
        await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic, messages, keys, offset });
        offset += messages;
      },
      { insertOnly },
    );
  const raw = () => {
    const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, keys));
    return timed(async () => ({ messages, latenciesMs: await rawSend(producer, records, RELAY_BATCH, RELAY_CONCURRENCY) }));
  };
  // The same ledger minus its one statement per batch: what recording costs.
  const unrecorded: WalLedger = { ...wal.ledger, record: async (sent) => ({ sent: sent.length }) };
  const baselineName = 'raw @platformatic/kafka producer, same records, batches of 500, 2 in flight (dual write)';
  try {
    const recorded = await interleaved(
      reps,
      async () => {
        await fill();
        return drainWithWalRelay({ wal, publisher, messages });
      },
      raw,
      env.log,
    );
    const listed = await interleaved(
      reps,
      async () => {
        await fill(true);
        return drainWithWalRelay({ wal, publisher, messages });
      },
      raw,
      env.log,
    );
    const bare = await interleaved(
      reps,
      async () => {
        await fill();
        return drainWithWalRelay({ wal, ledger: unrecorded, publisher, messages });
      },
      raw,
      env.log,
    );
    const insertOnly = await insertOnlyOutbox(db);
    const floor = await interleaved(
      reps,
      async () => {
        await insertOnly.fill(topic, messages, keys);
        return drainWithWalRelay({ wal, stream: insertOnly.stream, ledger: insertOnly.ledger, publisher, messages });
      },
      raw,
      env.log,
    ).finally(() => insertOnly.close());
    const latencyOf = `batch of up to ${WAL_BATCH} (whole transactions): interval between recorded batches (WAL), send to ack of 500 (raw)`;
    return [
      makeResult({
        name: 'relay-wal',
        messages,
        zeroloss: recorded.a,
        baseline: recorded.b,
        baselineName,
        latencyOf,
        reps: reps.reps,
        target: { metric: 'ratio', op: '>=', value: 0.75 },
        notes:
          'throwaway PostgreSQL, wal_level=logical; replication protocol through pg-logical-replication 2.5.0, pgoutput read by the lean decoder (binary values on PG 14+); one UPDATE per batch records the rows sent',
      }),
      makeResult({
        name: 'relay-wal-insert-only',
        messages,
        zeroloss: listed.a,
        baseline: listed.b,
        baselineName,
        latencyOf,
        reps: reps.reps,
        target: { metric: 'ratio', op: '>=', value: 0.75 },
        notes:
          'the WAL relay on the insert-only outbox (relay --mode wal --create-slot --insert-only): rows inserted for the stream, one outbox_wal_batch row per batch records the sends, no outbox row updated',
      }),
      makeResult({
        name: 'relay-wal-unrecorded',
        messages,
        zeroloss: bare.a,
        baseline: bare.b,
        baselineName,
        latencyOf,
        reps: reps.reps,
        notes: 'the same WAL relay without its record statement (not a shipped mode): the difference to relay-wal is what recording costs',
      }),
      makeResult({
        name: 'relay-wal-insert-only-floor',
        messages,
        zeroloss: floor.a,
        baseline: floor.b,
        baselineName,
        latencyOf,
        reps: reps.reps,
        notes:
          'not a shipped mode: the same WAL relay streaming from a primary-key-only outbox filled by plain inserts, one INSERT per batch as its record (bench/lib/insert-only-outbox.ts); the most an insert-only outbox (issue #14 item 4) could give with this relay',
      }),
    ];
  } finally {
    await publisher.close().catch(() => {});
    await producer.close(true).catch(() => {});
    await deleteTopics(env, [topic]);
    await db.close();
  }
}
