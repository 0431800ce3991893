import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Database } from '../src/ports/sql-executor.ts';
import {
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
import { describe, type Reps, type RunResult, summarise, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { fillOutbox } from './relay.ts';
import type { ScaleWorkerConfig, WorkerMessage } from './scale-worker.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

/** 12 partitions: 4 instances hold 3 each, so an even split exists for every instance count of the grid. */
const PARTITIONS = 12;
const KEYS = 100;
/** ZL_SCALE_INSTANCES=1,4 runs only those counts (diagnosis); the report needs 1 as its reference. */
const INSTANCES = (process.env.ZL_SCALE_INSTANCES?.split(',').map(Number) ?? [1, 2, 4]) as readonly number[];
/** ZL_SCALE_ROLES=relay (or consumer) runs only that half of `scale` (diagnosis). */
const ROLES = process.env.ZL_SCALE_ROLES?.split(',') ?? ['relay', 'consumer'];
/**
 * Per-instance settings, the same for every instance count: what one process is allowed to use. 16 lanes,
 * not the default 64: a key's messages run one after another, so with 100 keys and 64 lanes two instances
 * could add at most 100 / 64 = 1.56x however well they scale; with 16, 1, 2 and 4 instances have 16, 32
 * and 64 keys in progress. ZL_SCALE_LANES sets another count (the same for every instance).
 */
const CONSUMER_CONCURRENCY = Number(process.env.ZL_SCALE_LANES ?? 16);
const CONSUMER_POOL = 10;
const RELAY_BATCH = 500;
const RELAY_CONCURRENCY = 2;
const RELAY_POOL = 4;
/** The steady window: from the moment this share of the messages is applied (or sent) to this share. */
const WINDOW = [0.1, 0.9] as const;

const WORKER = fileURLToPath(new URL('./scale-worker.ts', import.meta.url));

interface Worker {
  child: ChildProcess;
  ready: boolean;
  partitions: number;
  revokes: number;
  errors: string[];
  transactions: number;
  members: number;
  cpuMs: number;
}

/** Starts `n` instances, each a process of its own (own pg pool, own Kafka client, own CPU scheduling). */
function spawnWorkers(env: BenchEnv, n: number, config: (index: number) => ScaleWorkerConfig): Worker[] {
  return Array.from({ length: n }, (_, index) => {
    const child = fork(WORKER, [JSON.stringify(config(index))], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const w: Worker = { child, ready: false, partitions: 0, revokes: 0, errors: [], transactions: 0, members: 0, cpuMs: 0 };
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') w.ready = true;
      else if (m.type === 'stats') {
        w.transactions = m.transactions;
        w.members = m.messages;
        w.cpuMs = m.cpuMs;
      } else if (m.type === 'assigned') w.partitions = m.partitions;
      else if (m.type === 'revoked') {
        w.partitions = 0;
        w.revokes++;
      } else if (m.type === 'error') {
        w.errors.push(m.message);
        env.log(`  instance ${index}: ${m.message.split('\n')[0]}`);
      }
    });
    return w;
  });
}

async function stopWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.child.exitCode !== null) return resolve();
          const timer = setTimeout(() => {
            w.child.kill('SIGKILL');
            resolve();
          }, 40_000);
          w.child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          w.child.send({ type: 'stop' });
        }),
    ),
  );
}

/**
 * Throughput over the steady window, from the database: the time stamps of the rows that finished (effects
 * applied, outbox rows sent), from the one at WINDOW[0] of the run to the one at WINDOW[1]. Start-up (first
 * fetch, first claim) and the tail (the last partitions draining alone) fall outside it.
 */
async function steadyWindow(db: Database, sql: string, messages: number): Promise<{ messages: number; seconds: number }> {
  const from = Math.floor(messages * WINDOW[0]);
  const to = Math.floor(messages * WINDOW[1]) - 1;
  const at = async (i: number) => {
    const { rows } = await db.query<{ t: string }>(`${sql} offset $1 limit 1`, [i]);
    return Number(rows[0]?.t);
  };
  const [t0, t1] = [await at(from), await at(to)];
  return { messages: to - from, seconds: (t1 - t0) / 1000 };
}

/** Waits for every instance to be ready and, for consumers, for the group to hold every partition, each instance some. */
async function settle(workers: Worker[], consumers: boolean): Promise<void> {
  const settled = () =>
    workers.every((w) => w.ready) &&
    (!consumers || (workers.reduce((n, w) => n + w.partitions, 0) === PARTITIONS && workers.every((w) => w.partitions > 0)));
  const failed = () => workers.some((w) => w.child.exitCode !== null);
  await until(() => settled() || failed(), 'every instance to be ready and the group settled', 120_000, 20);
  if (failed()) throw new Error(`a scale instance exited: ${workers.flatMap((w) => w.errors).join('; ')}`);
  // Settled means the same for a while: a member that joined late would still trigger one more rebalance.
  const revokes = workers.reduce((n, w) => n + w.revokes, 0);
  await new Promise((r) => setTimeout(r, 1_000));
  if (workers.reduce((n, w) => n + w.revokes, 0) !== revokes || !settled()) return settle(workers, consumers);
}

interface ScaleRun extends RunResult {
  /** Rebalances (revokes, summed over instances) while the messages were being consumed: 0 in a clean run. */
  revokesInRun: number;
  split: string;
}

/** One consumer run: a topic with a backlog, `instances` processes joined and settled, then all read at once. */
async function consumerRun(env: BenchEnv, instances: number, messages: number, ioMs: number): Promise<ScaleRun> {
  const s = await benchSchema(env, 'zlb_scale', 4);
  const topic = uniqueTopic('zlb-scale-consumer');
  const producer = rawProducer(env, 'zl-bench-scale-fill');
  let workers: Worker[] = [];
  try {
    await createTopic(env, topic, PARTITIONS);
    const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, KEYS, Math.floor(i / KEYS) + 1));
    await rawSend(producer, records, 500, 2);
    const groupId = uniqueName('zlb-scale-g');
    workers = spawnWorkers(env, instances, (index) => ({
      role: 'consumer',
      index,
      pgUrl: env.pgUrl,
      brokers: env.brokers,
      schema: s.schema,
      poolSize: CONSUMER_POOL,
      groupId,
      topic,
      concurrency: CONSUMER_CONCURRENCY,
      ioMs,
    }));
    await settle(workers, true);
    const split = workers.map((w) => w.partitions).join('/');
    const revokes = workers.reduce((n, w) => n + w.revokes, 0);
    const started = performance.now();
    for (const w of workers) w.child.send({ type: 'go' });
    const applied = async () => Number((await s.db.query<{ n: string }>(`select count(*) n from "${s.schema}".effect`)).rows[0]?.n);
    await until(
      async () => (await applied()) >= messages || workers.some((w) => w.child.exitCode !== null),
      'every message applied',
      600_000,
      250,
    );
    const total = (performance.now() - started) / 1000;
    if ((await applied()) < messages) throw new Error(`a consumer instance exited: ${workers.flatMap((w) => w.errors).join('; ')}`);
    const window = await steadyWindow(
      s.db,
      `select extract(epoch from applied_at) * 1000 t from "${s.schema}".effect order by applied_at`,
      messages,
    );
    env.log(
      `    ${instances} consumer(s), partitions ${split}: all ${messages} in ${total.toFixed(1)} s (${Math.round(messages / total)}/s overall)`,
    );
    return { ...window, latenciesMs: [], rssMb: Number.NaN, revokesInRun: workers.reduce((n, w) => n + w.revokes, 0) - revokes, split };
  } finally {
    await stopWorkers(workers);
    const tx = workers.reduce((n, w) => n + w.transactions, 0);
    if (tx > 0)
      env.log(
        `    effect transactions: ${tx}, ${(workers.reduce((n, w) => n + w.members, 0) / tx).toFixed(1)} messages each; CPU per process (start-up included) ${workers.map((w) => `${(w.cpuMs / 1000).toFixed(1)} s`).join(', ')}`,
      );
    await producer.close(true).catch(() => {});
    await deleteTopics(env, [topic]);
    await s.drop();
  }
}

/** One relay run: an outbox of `messages` committed rows, `instances` relay processes started at once. */
async function relayRun(env: BenchEnv, instances: number, messages: number, topic: string): Promise<ScaleRun> {
  const s = await benchSchema(env, 'zlb_scale', 8);
  let workers: Worker[] = [];
  try {
    const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
    await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic, messages, keys: KEYS });
    workers = spawnWorkers(env, instances, (index) => ({
      role: 'relay',
      index,
      pgUrl: env.pgUrl,
      brokers: env.brokers,
      schema: s.schema,
      poolSize: RELAY_POOL,
      batchSize: RELAY_BATCH,
      relayConcurrency: RELAY_CONCURRENCY,
    }));
    await settle(workers, false);
    const started = performance.now();
    for (const w of workers) w.child.send({ type: 'go' });
    const sent = async () =>
      Number((await s.db.query<{ n: string }>(`select count(*) n from "${s.schema}".outbox where state = 1`)).rows[0]?.n);
    await until(async () => (await sent()) >= messages || workers.some((w) => w.child.exitCode !== null), 'every row sent', 600_000, 250);
    const total = (performance.now() - started) / 1000;
    if ((await sent()) < messages) throw new Error(`a relay instance exited: ${workers.flatMap((w) => w.errors).join('; ')}`);
    const window = await steadyWindow(
      s.db,
      `select extract(epoch from sent_at) * 1000 t from "${s.schema}".outbox where state = 1 order by sent_at`,
      messages,
    );
    env.log(`    ${instances} relay(s): all ${messages} in ${total.toFixed(1)} s (${Math.round(messages / total)}/s overall)`);
    return { ...window, latenciesMs: [], rssMb: Number.NaN, revokesInRun: 0, split: '-' };
  } finally {
    await stopWorkers(workers);
    await s.drop();
  }
}

/**
 * Runs each instance count `reps` times after one discarded warm-up, rotating the order every round so no
 * count always runs first, and reports each against 1 instance of the same run.
 */
async function grid(
  env: BenchEnv,
  name: string,
  messages: number,
  reps: Reps,
  targets: Record<number, number>,
  notes: string,
  run: (instances: number) => Promise<ScaleRun>,
): Promise<BenchResult[]> {
  const results = new Map<number, ScaleRun[]>(INSTANCES.map((n) => [n, []]));
  for (let i = 0; i < reps.warmup; i++) await run(1).then((r) => env.log(`  warm-up ${name} 1 instance: ${describe(r)}`));
  for (let rep = 0; rep < reps.reps; rep++) {
    for (let j = 0; j < INSTANCES.length; j++) {
      const n = INSTANCES[(j + rep) % INSTANCES.length] as number;
      const r = await run(n);
      env.log(
        `  rep ${rep + 1} ${name} ${n} instance(s): steady ${r.messages} in ${r.seconds.toFixed(2)} s = ${Math.round(r.messages / r.seconds)}/s, rebalances in run ${r.revokesInRun}`,
      );
      results.get(n)?.push(r);
    }
  }
  const reference = summarise(results.get(1) ?? []);
  return INSTANCES.map((n) => {
    const target = targets[n];
    return makeResult({
      name: `${name}-${n}i`,
      messages,
      zeroloss: summarise(results.get(n) ?? []),
      baseline: reference,
      baselineName: `${name}, 1 instance (same run)`,
      latencyOf: 'none: steady-state throughput only',
      reps: reps.reps,
      ...(target !== undefined && n > 1 ? { target: { metric: 'ratio' as const, op: '>=' as const, value: target } } : {}),
      notes: `${n} instance(s), each a process of its own; ${notes}; throughput over the steady window (${WINDOW[0] * 100}% to ${WINDOW[1] * 100}% of the messages finished, time stamps from the database); ratio = speed-up over 1 instance`,
    });
  });
}

const consumerNotes = (ioMs: number) =>
  `${KEYS} keys, ${PARTITIONS} partitions, per instance ${CONSUMER_CONCURRENCY} lanes, pool ${CONSUMER_POOL}, default group commit; the group settled (every instance holding partitions, no rebalance for 1 s) before reading starts; handler: one insert${ioMs > 0 ? ` after awaiting ${ioMs} ms (a call to another service)` : ''}`;

/** The relay and consumer at 1, 2 and 4 instances, steady state (issue #18: 2 and 4 instances >= 0.9x of one). */
export async function scaleBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  const topic = uniqueTopic('zlb-scale-relay');
  try {
    await createTopic(env, topic, PARTITIONS);
    if (!ROLES.includes('relay')) return scaleConsumerGrid(env, messages, reps);
    const relay = await grid(
      env,
      'scale-relay',
      messages,
      reps,
      { 2: 0.9, 4: 0.9 },
      `${KEYS} keys, ${PARTITIONS} partitions, per instance batches of ${RELAY_BATCH}, ${RELAY_CONCURRENCY} claim loops, pool ${RELAY_POOL}; all start at once on a filled outbox`,
      (n) => relayRun(env, n, messages, topic),
    );
    if (!ROLES.includes('consumer')) return relay;
    return [...relay, ...(await scaleConsumerGrid(env, messages, reps))];
  } finally {
    await deleteTopics(env, [topic]);
  }
}

function scaleConsumerGrid(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  return grid(env, 'scale-consumer', messages, reps, { 2: 0.9, 4: 0.9 }, consumerNotes(0), (n) => consumerRun(env, n, messages, 0));
}

export const IO_MS = 10;

/** The consumer with a handler that awaits 10 ms: more instances must add (issue #18: 2 >= 1.7x, 4 >= 2.5x). */
export async function scaleIoBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  return grid(env, 'scale-io-consumer', messages, reps, { 2: 1.7, 4: 2.5 }, consumerNotes(IO_MS), (n) =>
    consumerRun(env, n, messages, IO_MS),
  );
}
