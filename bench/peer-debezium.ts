import { randomUUID } from 'node:crypto';
import { KafkaInspector } from '../src/adapters/kafka/kafka-inspector.ts';
import { createAdmin, ensureTopic } from '../src/adapters/kafka/kafka-admin.ts';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { HEADER } from '../src/core/envelope.ts';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../src/adapters/postgres/wal/postgres-wal.ts';
import type { Outbox } from '../src/outbox/outbox.ts';
import { WalRelay } from '../src/outbox/wal-relay.ts';
import type { PartitionWatermarks } from '../src/ports/broker-inspector.ts';
import { type ConnectWorker, fetchJars, startConnect } from '../infra/debezium/connect.ts';
import { startPostgresInstance } from '../infra/services/postgres-instance.ts';
import { freePort } from '../infra/services/port-open.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';
import { type BenchEnv, type BenchSchema, benchSchema, deleteTopics, keyOf, orderPayload, uniqueTopic } from './lib/env.ts';
import { describe, interleaved, type PathSummary, type Reps, type RunResult, rssSampler, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { fillOutbox, WAL_BATCH } from './relay.ts';

/** Offered rate of the latency phase (the 500 msg/s), one message per business transaction. */
export const DEBEZIUM_LATENCY_RATE = 500;
/** Seconds of offered load per side and repetition in the latency phase. */
const WINDOW_SECONDS = 10;
/** The JVM's warm-up: drain rounds (discarded) until the worker has run this long. */
const JVM_WARMUP_MS = 60_000;

/**
 * Debezium's connector, configured as its documentation advises for low latency at a moderate rate:
 * `poll.interval.ms` bounds how long Connect's poll waits for a fuller batch (default 500 ms, which alone
 * would put up to half a second on a trickle), batches and queue sized for a backlog, and the outbox
 * EventRouter mapped onto zeroloss's own outbox columns. The worker's producer settings are in
 * infra/debezium/worker.properties (acks=all, idempotence, linger 5 ms).
 */
export const CONNECTOR_SETTINGS = {
  'poll.interval.ms': '10',
  'max.batch.size': '2048',
  'max.queue.size': '16384',
  'snapshot.mode': 'no_data',
  'plugin.name': 'pgoutput',
  'publication.autocreate.mode': 'disabled',
  transforms: 'outbox',
  'transforms.outbox.type': 'io.debezium.transforms.outbox.EventRouter',
  'transforms.outbox.table.field.event.id': 'message_id',
  'transforms.outbox.table.field.event.key': 'msg_key',
  'transforms.outbox.table.field.event.payload': 'payload',
  'transforms.outbox.route.by.field': 'topic',
  // EventRouter's own placeholder (the row's `topic` value), not a JavaScript template.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Debezium placeholder, passed on verbatim
  'transforms.outbox.route.topic.replacement': '${routedByValue}',
  'transforms.outbox.table.fields.additional.placement': 'headers:header:zl-headers',
  'transforms.outbox.table.expand.json.payload': 'false',
} as const;

const sum = (marks: PartitionWatermarks[]) => marks.reduce((n, m) => n + Number(m.high), 0);

/** A topic whose records carry the broker's append time, so both sides are timed by one clock. */
async function createAppendTimeTopic(env: BenchEnv, topic: string): Promise<void> {
  const admin = createAdmin(env.brokers);
  try {
    await ensureTopic(admin, { topic, partitions: 6, configs: { 'message.timestamp.type': 'LogAppendTime' } });
    await until(
      async () => {
        const metadata = await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
        return metadata?.topics.get(topic)?.partitions.every((p) => p.leader >= 0) ?? false;
      },
      `leaders for ${topic}`,
      30_000,
      100,
    );
  } finally {
    await admin.close();
  }
}

/** Peak RSS of the Connect JVM while a run lasts, read from /proc every 50 ms. */
function jvmRssSampler(connect: ConnectWorker): { stop: () => number } {
  let peak = connect.rssMb();
  const timer = setInterval(() => (peak = Math.max(peak, connect.rssMb())), 50);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, connect.rssMb());
    },
  };
}

/**
 * zeroloss's WAL relay (docs/wal-relay.md) against Debezium 3.6.1.Final's PostgreSQL connector with the
 * outbox EventRouter on Kafka Connect 4.1.1 standalone, on one throwaway PostgreSQL (wal_level=logical),
 * the same broker, the same rows (zeroloss's enqueue), repetitions interleaved. Each side has its own
 * outbox table, publication (inserts only), slot and topic, so neither reads the other's rows; each
 * still decodes the other's WAL, as it would on a shared server.
 *
 * Throughput: a backlog of `messages` committed rows on a fresh slot, from the moment the side's slot is
 * active (`pg_replication_slots.active`, polled every 5 ms) to the broker append time of its last record.
 * Latency: `DEBEZIUM_LATENCY_RATE` msg/s offered open-loop with both readers running, from the moment the
 * application saw its COMMIT return to the record's LogAppendTime on the topic (read back afterwards).
 */
export async function debeziumPeerBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult> {
  await fetchJars(env.log);
  const instance = await startPostgresInstance({
    port: await freePort(),
    name: 'bench-debezium',
    settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10 },
  });
  const walEnv = { ...env, pgUrl: instance.url };
  const schemas: BenchSchema[] = [];
  const topics: string[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const zs = await benchSchema(walEnv, 'zlb_pdz');
    schemas.push(zs);
    const ds = await benchSchema(walEnv, 'zlb_pdd');
    schemas.push(ds);
    const publication = `${ds.schema}_dbz`;
    await ds.pool.query(`create publication "${publication}" for table "${ds.schema}".outbox with (publish = 'insert')`);
    const store = postgres(instance.url, { schema: zs.schema });
    const wal = postgresWal(store, { url: instance.url });
    cleanups.push(
      () => wal.dropSlot(),
      () => store.close(),
    );
    const zTopic = uniqueTopic('zlb-pdz');
    const dTopic = uniqueTopic('zlb-pdd');
    topics.push(zTopic, dTopic);
    await createAppendTimeTopic(env, zTopic);
    await createAppendTimeTopic(env, dTopic);
    const zOutbox = testOutbox({ schema: zs.schema, producerId: 'bench' });
    const dOutbox = testOutbox({ schema: ds.schema, producerId: 'bench' });
    const publisher = new KafkaPublisher({ brokers: env.brokers, clientId: 'zl-bench-peer-debezium' });
    cleanups.push(() => publisher.close());
    const inspector = new KafkaInspector({ brokers: env.brokers, idleMs: 10_000 });
    cleanups.push(() => inspector.close());
    const connect = await startConnect({ brokers: env.brokers, port: await freePort() });
    cleanups.unshift(() => connect.stop());
    env.log(`[debezium] Connect worker pid ${connect.pid} at ${connect.url}`);

    const marks = async (topic: string) => (await inspector.watermarks(topic)) ?? [];
    const slotActive = async (slot: string) =>
      (await zs.pool.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot])).rows[0]?.active ??
      false;
    /** Resolves with Date.now() at the first poll that sees the slot read by a session. */
    const activeAt = async (slot: string) => {
      await until(() => slotActive(slot), `slot ${slot} to become active`, 120_000, 5);
      return Date.now();
    };
    const released = (slot: string) => until(async () => !(await slotActive(slot)), `slot ${slot} to be released`, 60_000, 20);
    /** The records put on `topic` since `before`: their count, latest append time, and append time per message id. */
    const readSince = async (topic: string, before: PartitionWatermarks[], idHeader: string) => {
      const after = await marks(topic);
      const ranges = after.map((m) => ({
        topic,
        partition: m.partition,
        from: before.find((b) => b.partition === m.partition)?.high ?? 0n,
        to: m.high,
      }));
      let count = 0;
      let firstMs = Number.POSITIVE_INFINITY;
      let lastMs = 0;
      const appended = new Map<string, number>();
      for await (const r of inspector.read(ranges)) {
        count++;
        firstMs = Math.min(firstMs, r.timestamp);
        lastMs = Math.max(lastMs, r.timestamp);
        const id = r.headers[idHeader];
        if (id !== undefined) appended.set(String(id), r.timestamp);
      }
      return { count, firstMs, lastMs, appended };
    };
    const onTopic = (topic: string, before: PartitionWatermarks[], n: number, check: () => Promise<void> = async () => {}) =>
      until(
        async () => {
          await check();
          return sum(await marks(topic)) - sum(before) >= n;
        },
        `${n} records on ${topic}`,
        300_000,
        20,
      );

    let zOffset = 0;
    let dOffset = 0;
    let connectorCount = 0;
    const connectorConfig = (slot: string, prefix: string): Record<string, string> => ({
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': '1',
      'database.hostname': '127.0.0.1',
      'database.port': String(instance.port),
      'database.user': 'postgres',
      'database.password': 'unused',
      'database.dbname': new URL(instance.url).pathname.slice(1),
      'topic.prefix': prefix,
      'slot.name': slot,
      'publication.name': publication,
      'table.include.list': `${ds.schema}.outbox`,
      ...CONNECTOR_SETTINGS,
    });
    /** Creates a connector on a slot made beforehand; throws with the task's trace if it fails. */
    const runConnector = async (slot: string) => {
      const name = `zlb-dbz-${++connectorCount}`;
      await connect.createConnector(name, connectorConfig(slot, `zlbdbz${connectorCount}`));
      const failed = async () => {
        const state = await connect.connectorState(name);
        if (state.states.includes('FAILED')) throw new Error(`Debezium connector ${name} failed: ${state.trace ?? state.states.join(',')}`);
      };
      return {
        name,
        failed,
        async stop() {
          await connect.deleteConnector(name);
          await released(slot);
          await ds.pool.query('select pg_drop_replication_slot($1)', [slot]);
        },
      };
    };
    /** A failed connector shows in its status, checked about once a second while waiting. */
    const everySecond = (check: () => Promise<void>) => {
      let last = 0;
      return async () => {
        if (Date.now() - last < 1_000) return;
        last = Date.now();
        await check();
      };
    };

    const zDrain = async (): Promise<RunResult> => {
      await zs.pool.query(`update "${zs.schema}".outbox set state = 1 where state <> 1`);
      await released(wal.slot);
      await wal.dropSlot();
      await wal.createSlot('bench');
      await fillOutbox({ transaction: (fn) => zs.db.transaction(fn), outbox: zOutbox, topic: zTopic, messages, keys, offset: zOffset });
      zOffset += messages;
      const before = await marks(zTopic);
      const rss = rssSampler();
      const relay = new WalRelay({ stream: wal.stream, ledger: wal.ledger, publisher, config: { walBatchSize: WAL_BATCH } });
      const errors: Error[] = [];
      relay.on('error', (e) => errors.push(e));
      try {
        const active = activeAt(wal.slot);
        active.catch(() => {});
        await relay.start();
        const startMs = await active;
        await onTopic(zTopic, before, messages, async () => {
          if (errors.length > 0) throw errors[0];
        });
        const rssMb = rss.stop();
        const { count, firstMs, lastMs } = await readSince(zTopic, before, HEADER.id);
        env.log(`    zeroloss: first record ${firstMs - startMs} ms after the slot became active`);
        return { messages: count, seconds: (lastMs - startMs) / 1000, latenciesMs: [], rssMb };
      } finally {
        await relay.stop();
      }
    };

    const dDrain = async (): Promise<RunResult> => {
      // The slot exists before the rows are committed, so the connector (no snapshot, no stored offset)
      // streams them from the slot's position, as zeroloss's relay does from its fresh slot.
      const slot = `zlb_dbz_${connectorCount + 1}`;
      await ds.pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      await fillOutbox({ transaction: (fn) => ds.db.transaction(fn), outbox: dOutbox, topic: dTopic, messages, keys, offset: dOffset });
      dOffset += messages;
      const before = await marks(dTopic);
      const rss = jvmRssSampler(connect);
      const active = activeAt(slot);
      active.catch(() => {});
      const connector = await runConnector(slot);
      try {
        const startMs = await active;
        await onTopic(dTopic, before, messages, everySecond(connector.failed));
        const rssMb = rss.stop();
        const { count, firstMs, lastMs } = await readSince(dTopic, before, 'id');
        env.log(`    debezium: first record ${firstMs - startMs} ms after the slot became active`);
        return { messages: count, seconds: (lastMs - startMs) / 1000, latenciesMs: [], rssMb };
      } finally {
        rss.stop();
        await connector.stop();
      }
    };

    // Throughput phase: drain rounds until the JVM has run a minute (and at least the asked warm-up), then the reps.
    let round = 0;
    while (round < reps.warmup || Date.now() - connect.startedAt < JVM_WARMUP_MS) {
      env.log(`  warm-up zeroloss: ${describe(await zDrain())}`);
      env.log(`  warm-up debezium: ${describe(await dDrain())}`);
      round++;
    }
    env.log(`[debezium] JVM warm for ${((Date.now() - connect.startedAt) / 1000).toFixed(0)} s; measuring the drain`);
    const drain = await interleaved({ warmup: 0, reps: reps.reps }, zDrain, dDrain, env.log);

    // Latency phase: both readers run throughout, each on a fresh slot; the load goes to one side at a time.
    await zs.pool.query(`update "${zs.schema}".outbox set state = 1 where state <> 1`);
    await released(wal.slot);
    await wal.dropSlot();
    await wal.createSlot('bench');
    const relay = new WalRelay({ stream: wal.stream, ledger: wal.ledger, publisher, config: { walBatchSize: WAL_BATCH } });
    const relayErrors: Error[] = [];
    relay.on('error', (e) => relayErrors.push(e));
    await relay.start();
    cleanups.unshift(() => relay.stop());
    const liveSlot = 'zlb_dbz_live';
    await ds.pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [liveSlot]);
    const live = await runConnector(liveSlot);
    cleanups.unshift(() => live.stop());
    await until(() => slotActive(liveSlot), 'the live connector to read its slot', 120_000, 20);

    const window = async (
      outbox: Outbox,
      db: BenchSchema,
      topic: string,
      idHeader: string,
      seconds: number,
      rssOf: () => { stop: () => number },
      check: () => Promise<void>,
    ): Promise<RunResult> => {
      const count = Math.round(DEBEZIUM_LATENCY_RATE * seconds);
      const before = await marks(topic);
      const rss = rssOf();
      const committed = new Map<string, number>();
      await openLoop(count, DEBEZIUM_LATENCY_RATE, async (k) => {
        const id = randomUUID();
        const key = keyOf(k, keys);
        await db.db.transaction((tx) => outbox.enqueue(tx, { id, topic, key, type: 'order.placed', payload: orderPayload(k, key) }));
        committed.set(id, Date.now());
      });
      await onTopic(topic, before, count, check);
      const rssMb = rss.stop();
      const { appended } = await readSince(topic, before, idHeader);
      const latenciesMs: number[] = [];
      for (const [id, at] of committed) {
        const on = appended.get(id);
        if (on !== undefined) latenciesMs.push(on - at);
      }
      if (latenciesMs.length < count) throw new Error(`${count - latenciesMs.length} of ${count} committed messages not found on ${topic}`);
      return { messages: count, seconds, latenciesMs, rssMb };
    };
    const relayCheck = async () => {
      if (relayErrors.length > 0) throw relayErrors[0];
    };
    const zWindow = (seconds: number) => () => window(zOutbox, zs, zTopic, HEADER.id, seconds, () => rssSampler(), relayCheck);
    const dWindow = (seconds: number) => () =>
      window(dOutbox, ds, dTopic, 'id', seconds, () => jvmRssSampler(connect), everySecond(live.failed));
    env.log(`[debezium] latency at ${DEBEZIUM_LATENCY_RATE} msg/s, ${WINDOW_SECONDS} s per side and rep`);
    env.log(`  warm-up zeroloss: ${describe(await zWindow(3)())}`);
    env.log(`  warm-up debezium: ${describe(await dWindow(3)())}`);
    const latency = await interleaved({ warmup: 0, reps: reps.reps }, zWindow(WINDOW_SECONDS), dWindow(WINDOW_SECONDS), env.log);

    const combine = (d: PathSummary, l: PathSummary): PathSummary => ({
      throughput: d.throughput,
      p50Ms: l.p50Ms,
      p99Ms: l.p99Ms,
      rssMb: Math.max(d.rssMb, l.rssMb),
      runs: d.runs,
    });
    return makeResult({
      name: 'peer-debezium',
      messages,
      zeroloss: combine(drain.a, latency.a),
      baseline: combine(drain.b, latency.b),
      baselineName: 'Debezium 3.6.1.Final PostgreSQL connector + outbox EventRouter on Kafka Connect 4.1.1 standalone (JVM -Xmx2g)',
      latencyOf: `one message, ${DEBEZIUM_LATENCY_RATE} msg/s offered (1 per transaction, open loop): COMMIT returned to the record's LogAppendTime on the topic`,
      reps: reps.reps,
      notes:
        `throughput: backlog of ${messages} committed rows on a fresh slot, slot active to last record's LogAppendTime; ` +
        `RSS: peak of the bench process (zeroloss relay, in-process with the bench's pools) and of the Connect JVM (/proc VmRSS); ` +
        `Debezium warmed >= ${JVM_WARMUP_MS / 1000} s; connector: poll.interval.ms=10, max.batch.size=2048, max.queue.size=16384, ` +
        `snapshot.mode=no_data, pgoutput, publication (insert only) made beforehand, EventRouter on message_id/msg_key/payload, route by topic, headers column as header; ` +
        `worker: producer acks=all, enable.idempotence=true, max.in.flight=5, linger.ms=5, batch.size=256 KiB, offset.flush.interval.ms=1000, ` +
        `key StringConverter, value ByteArrayConverter; zeroloss: walBatchSize ${WAL_BATCH}, defaults otherwise (acks=all, idempotent)`,
    });
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {});
    if (topics.length > 0) await deleteTopics(env, topics).catch(() => {});
    for (const s of schemas) await s.drop();
    await instance.stop('fast').catch(() => {});
  }
}

/**
 * Open-loop load: starts transaction k at t0 + k / rate seconds whether or not earlier ones finished, so a
 * slow path shows up as latency instead of a lower offered rate (as bench/e2e.ts).
 */
async function openLoop(count: number, rate: number, run: (k: number) => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const running: Promise<void>[] = [];
  let k = 0;
  await new Promise<void>((resolve, reject) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      for (; k < due; k++) running.push(run(k).catch(reject));
      if (k >= count) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  await Promise.all(running);
}
