import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { KafkaInspector } from '../src/adapters/kafka/kafka-inspector.ts';
import { createAdmin, ensureTopic } from '../src/adapters/kafka/kafka-admin.ts';
import { HEADER } from '../src/core/envelope.ts';
import { postgres } from '../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../src/adapters/postgres/wal/postgres-wal.ts';
import type { Outbox } from '../src/outbox/outbox.ts';
import type { PartitionWatermarks } from '../src/ports/broker-inspector.ts';
import { fetchJars, startConnect } from '../infra/debezium/connect.ts';
import { startPostgresInstance } from '../infra/services/postgres-instance.ts';
import { freePort } from '../infra/services/port-open.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';
import { type BenchEnv, type BenchSchema, benchSchema, deleteTopics, keyOf, orderPayload, uniqueTopic } from './lib/env.ts';
import { describe, interleaved, openLoop, type PathSummary, type Reps, type RunResult, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { fillOutbox, WAL_BATCH } from './relay.ts';

/** Offered rate of the latency phase (the 500 msg/s), one message per business transaction. */
export const DEBEZIUM_LATENCY_RATE = 500;
/** Seconds of offered load per side and repetition in the latency phase. */
const WINDOW_SECONDS = 10;
/** The JVM's warm-up: drain rounds (discarded) until the worker has run this long. */
const JVM_WARMUP_MS = 60_000;

/**
 * Debezium's connector, set for low latency at a moderate rate: `poll.interval.ms` is how long the task
 * waits for new change events before it hands a batch to Connect (default 500 ms), batch and queue sized
 * for a backlog (defaults 2,048 and 8,192), and the outbox EventRouter mapped onto zeroloss's own outbox
 * columns. The worker's producer settings are in infra/debezium/worker.properties (acks=all, idempotence,
 * linger 5 ms).
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

function rssMbOf(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0; // exited between two samples
  }
}

/** Peak RSS of another process (the relay's, the Connect JVM's) while a run lasts, read from /proc every 50 ms. */
function rssSamplerOf(pid: number): { stop: () => number } {
  let peak = rssMbOf(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMbOf(pid))), 50);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMbOf(pid));
    },
  };
}

const ROOT = path.resolve(import.meta.dirname, '..');

/**
 * zeroloss's relay as users run it, `zeroloss relay --mode wal` (src/cli/main.ts on this Node, types
 * stripped), in a process of its own like Debezium's JVM: its RSS is its own and it shares no event loop
 * with the bench's writers and readers. Logs are kept only for an error message.
 */
async function startCliRelay(options: { url: string; schema: string; brokers: string[] }) {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      path.join(ROOT, 'src', 'cli', 'main.ts'),
      'relay',
      '--mode',
      'wal',
      '--pg',
      options.url,
      '--schema',
      options.schema,
      '--kafka',
      options.brokers.join(','),
      '--wal-batch-size',
      String(WAL_BATCH),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const keep = (d: Buffer) => (log = `${log}${d.toString('utf8')}`.slice(-4_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  child.once('exit', () => (exited = true));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  await once(child, 'spawn');
  return {
    pid: child.pid as number,
    /** Throws with the relay's last log lines if it has exited. */
    async check() {
      if (exited) throw new Error(`the zeroloss relay exited; its last output:\n${log}`);
    },
    /** SIGTERM: the relay finishes and records what is in flight, then exits. */
    async stop() {
      process.off('exit', killOnExit);
      if (exited) return;
      const gone = once(child, 'exit');
      child.kill('SIGTERM');
      const timeout = new Promise((resolve) => setTimeout(resolve, 30_000).unref()).then(() => 'timeout');
      if ((await Promise.race([gone, timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await gone;
      }
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
 * Both readers are processes of their own, started once and kept running: `zeroloss relay --mode wal` and
 * the Connect JVM; RSS is each one's VmRSS.
 *
 * Throughput: a backlog of `messages` rows committed while the side's process is frozen (SIGSTOP), from its
 * SIGCONT to the broker append time (LogAppendTime) of its last record.
 * Latency: `DEBEZIUM_LATENCY_RATE` msg/s offered open-loop with both readers running, from the transaction's
 * commit timestamp on the server (track_commit_timestamp) to the record's LogAppendTime on the topic (read
 * back afterwards; whole milliseconds, so a sample reads up to 1 ms short).
 */
export async function debeziumPeerBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult> {
  await fetchJars(env.log);
  const instance = await startPostgresInstance({
    port: await freePort(),
    name: 'bench-debezium',
    // Commit timestamps: the latency phase times each message from its transaction's commit on the server.
    // A reader frozen for a drain's fill must not be dropped by its walsender (default 60 s).
    settings: {
      wal_level: 'logical',
      max_wal_senders: 10,
      max_replication_slots: 10,
      track_commit_timestamp: 'on',
      wal_sender_timeout: '600s',
    },
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
    const inspector = new KafkaInspector({ brokers: env.brokers, idleMs: 10_000 });
    cleanups.push(() => inspector.close());
    const connect = await startConnect({ brokers: env.brokers, port: await freePort() });
    cleanups.unshift(() => connect.stop());
    env.log(`[debezium] Connect worker pid ${connect.pid} at ${connect.url}`);

    const marks = async (topic: string) => (await inspector.watermarks(topic)) ?? [];
    const slotActive = async (slot: string) =>
      (await zs.pool.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot])).rows[0]?.active ??
      false;
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
    const connectorName = 'zlb-dbz';
    const slot = 'zlb_dbz';
    /** A failed connector shows in its status; checked about once a second while waiting. */
    let lastStatus = 0;
    const connectorCheck = async () => {
      if (Date.now() - lastStatus < 1_000) return;
      lastStatus = Date.now();
      const state = await connect.connectorState(connectorName);
      if (state.states.includes('FAILED')) throw new Error(`the Debezium connector failed: ${state.trace ?? state.states.join(',')}`);
    };

    // Both readers run for the whole bench, each on its own slot made before any row it is to send.
    await wal.createSlot('bench');
    const relay = await startCliRelay({ url: instance.url, schema: zs.schema, brokers: env.brokers });
    cleanups.unshift(() => relay.stop());
    await ds.pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    await connect.createConnector(connectorName, {
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': '1',
      'database.hostname': '127.0.0.1',
      'database.port': String(instance.port),
      'database.user': 'postgres',
      'database.password': 'unused',
      'database.dbname': new URL(instance.url).pathname.slice(1),
      'topic.prefix': 'zlbdbz',
      'slot.name': slot,
      'publication.name': publication,
      'table.include.list': `${ds.schema}.outbox`,
      ...CONNECTOR_SETTINGS,
    });
    cleanups.unshift(async () => {
      await connect.deleteConnector(connectorName);
      await released(slot);
      await ds.pool.query('select pg_drop_replication_slot($1)', [slot]);
    });
    await until(
      async () => (await slotActive(wal.slot)) && (await slotActive(slot)),
      'both readers to stream from their slots',
      120_000,
      20,
    );

    /**
     * A backlog: the reader's process is frozen (SIGSTOP) while `messages` rows commit, then let go
     * (SIGCONT) and timed from that moment to its last record's LogAppendTime. Both processes stay up and
     * warm, as a relay that fell behind is; each slot's walsender decodes ahead only as far as the socket
     * buffers take while its reader is frozen (wal_sender_timeout is raised so it does not give up on it).
     */
    const drain = async (side: {
      name: string;
      pid: number;
      fill: () => Promise<void>;
      topic: string;
      idHeader: string;
      check: () => Promise<void>;
    }): Promise<RunResult> => {
      process.kill(side.pid, 'SIGSTOP');
      let stopped = true;
      try {
        await side.fill();
        const before = await marks(side.topic);
        const rss = rssSamplerOf(side.pid);
        const startMs = Date.now();
        process.kill(side.pid, 'SIGCONT');
        stopped = false;
        await onTopic(side.topic, before, messages, side.check);
        const rssMb = rss.stop();
        const { count, firstMs, lastMs } = await readSince(side.topic, before, side.idHeader);
        env.log(`    ${side.name}: first record ${firstMs - startMs} ms after SIGCONT`);
        return { messages: count, seconds: (lastMs - startMs) / 1000, latenciesMs: [], rssMb };
      } finally {
        if (stopped) process.kill(side.pid, 'SIGCONT');
      }
    };
    const zDrain = () =>
      drain({
        name: 'zeroloss',
        pid: relay.pid,
        topic: zTopic,
        idHeader: HEADER.id,
        check: relay.check,
        fill: async () => {
          await fillOutbox({ transaction: (fn) => zs.db.transaction(fn), outbox: zOutbox, topic: zTopic, messages, keys, offset: zOffset });
          zOffset += messages;
        },
      });
    const dDrain = () =>
      drain({
        name: 'debezium',
        pid: connect.pid,
        topic: dTopic,
        idHeader: 'id',
        check: connectorCheck,
        fill: async () => {
          await fillOutbox({ transaction: (fn) => ds.db.transaction(fn), outbox: dOutbox, topic: dTopic, messages, keys, offset: dOffset });
          dOffset += messages;
        },
      });

    // Throughput: drain rounds until the JVM has run a minute (and at least the asked warm-up), then the reps.
    let round = 0;
    while (round < reps.warmup || Date.now() - connect.startedAt < JVM_WARMUP_MS) {
      env.log(`  warm-up zeroloss: ${describe(await zDrain())}`);
      env.log(`  warm-up debezium: ${describe(await dDrain())}`);
      round++;
    }
    env.log(`[debezium] JVM up for ${((Date.now() - connect.startedAt) / 1000).toFixed(0)} s; measuring the drain`);
    const drained = await interleaved({ warmup: 0, reps: reps.reps }, zDrain, dDrain, env.log);

    const window = async (
      outbox: Outbox,
      db: BenchSchema,
      topic: string,
      idHeader: string,
      seconds: number,
      pid: number,
      check: () => Promise<void>,
    ): Promise<RunResult> => {
      const count = Math.round(DEBEZIUM_LATENCY_RATE * seconds);
      const before = await marks(topic);
      const rss = rssSamplerOf(pid);
      const xids = new Map<string, string>();
      await openLoop(count, DEBEZIUM_LATENCY_RATE, async (k) => {
        const id = randomUUID();
        const key = keyOf(k, keys);
        const xid = await db.db.transaction(async (tx) => {
          await outbox.enqueue(tx, { id, topic, key, type: 'order.placed', payload: orderPayload(k, key) });
          return (await tx.query<{ xid: string }>('select pg_current_xact_id()::xid::text as xid')).rows[0]?.xid ?? '';
        });
        xids.set(id, xid);
      });
      await onTopic(topic, before, count, check);
      const rssMb = rss.stop();
      // The server's commit time (track_commit_timestamp), not when the bench's event loop saw COMMIT return:
      // under load that came late enough to put some records on the topic "before" their commit.
      const { rows } = await db.pool.query<{ xid: string; ms: number }>(
        'select x as xid, extract(epoch from pg_xact_commit_timestamp(x::xid))::float8 * 1000 as ms from unnest($1::text[]) x',
        [[...xids.values()]],
      );
      const committedMs = new Map(rows.map((r) => [r.xid, r.ms]));
      const { appended } = await readSince(topic, before, idHeader);
      const latenciesMs: number[] = [];
      for (const [id, xid] of xids) {
        const on = appended.get(id);
        const at = committedMs.get(xid);
        if (on !== undefined && at !== undefined) latenciesMs.push(on - at);
      }
      if (latenciesMs.length < count) throw new Error(`${count - latenciesMs.length} of ${count} committed messages not found on ${topic}`);
      return { messages: count, seconds, latenciesMs, rssMb };
    };
    const zWindow = (seconds: number) => () => window(zOutbox, zs, zTopic, HEADER.id, seconds, relay.pid, relay.check);
    const dWindow = (seconds: number) => () => window(dOutbox, ds, dTopic, 'id', seconds, connect.pid, connectorCheck);
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
      zeroloss: combine(drained.a, latency.a),
      baseline: combine(drained.b, latency.b),
      baselineName: 'Debezium 3.6.1.Final PostgreSQL connector + outbox EventRouter on Kafka Connect 4.1.1 standalone (JVM -Xmx2g)',
      latencyOf: `one message, ${DEBEZIUM_LATENCY_RATE} msg/s offered (1 per transaction, open loop): the transaction's commit timestamp on the server to the record's LogAppendTime on the topic`,
      reps: reps.reps,
      notes:
        `throughput: backlog of ${messages} rows committed while the reader's process was SIGSTOPped, SIGCONT to the last record's LogAppendTime; ` +
        `RSS: peak VmRSS (/proc) of the relay's process (zeroloss relay --mode wal, Node ${process.version}) and of the Connect JVM; ` +
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
