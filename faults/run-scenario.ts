import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';

import { prng } from '../test/helpers/prng.ts';
import { check, type CheckDetails, type EffectsOnTopic, type Figures, failures, outstandingOnTopic } from './checker.ts';
import { readCommittedTopic } from './committed-topic-reader.ts';
import type { Environment } from './environment.ts';
import { healEverything, type NemesisContext } from './nemesis.ts';
import { consumerGroup, relayGroup } from './processes.ts';
import { scenarioBroker } from './scenario-broker.ts';
import type { RelayMode, Scenario } from './scenarios.ts';
import { SlotHolders } from './slot-holders.ts';
import type { TopicRecord } from './topic-reader.ts';
import { businessSchemaSql, type FxPayload, runWorkload } from './workload.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';
import { createOutbox } from '../src/outbox/outbox.ts';
import { OutboxWithoutKeyLock } from './outbox-without-key-lock.ts';
import { rmSync } from 'node:fs';
import { createLotteryTables } from '../src/examples/lottery/lottery-tables.ts';
import { outboxLedger } from './checker.ts';
import { type SourceKind, stateColumnLedger, writeAwards, writeSettingsFile } from './state-column.ts';
import { SteppedClock } from './stepped-clock.ts';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { idChecks, type IdLog, loggingIds } from './id-order.ts';
import { idsFollowClock } from './ids-follow-clock.ts';

export const PARTITIONS = 6;
/** Keys of the workload unless the run says otherwise (--keys). */
export const DEFAULT_KEYS = 200;
const DEFAULT_RELAYS = 2;
const DEFAULT_CONSUMERS = 3;

export type Broken =
  | 'relay-ack-before-send'
  | 'claim-without-key-hold'
  | 'effect-outside-transaction'
  | 'producer-without-key-lock'
  | 'wal-confirm-before-send'
  | 'offsets-outside-transaction'
  | 'db-offsets-outside-transaction'
  | 'log-offsets-before-effect'
  | 'ids-follow-clock';

/**
 * How the consumers make their effects exactly once: the inbox consumer (effect and inbox row in one
 * Postgres transaction; the default), or zeroloss's KafkaTransactionalProcessor, whose effect is an output
 * record committed with the input offsets in one Kafka transaction (faults/transactional-worker.ts).
 */
export type ExactlyOnce = 'inbox' | 'kafka-transactions';
export const EXACTLY_ONCE: readonly ExactlyOnce[] = ['inbox', 'kafka-transactions'];

export interface RunOptions {
  env: Environment;
  messages: number;
  /** Keys the messages are spread over (default DEFAULT_KEYS). */
  keys?: number;
  seed: number;
  /** Committed messages per second the workload aims at; slower when a scenario needs a longer workload. */
  rate: number;
  /** Give up draining when nothing moved for this long (everything that could arrive has). */
  stallSeconds: number;
  broken?: Broken;
  /** Where consumers keep their offsets (P10): the broker's group (default) or their own database. */
  offsets?: 'broker' | 'database';
  /** The inbox consumer (default) or the Kafka-transactions processor. */
  exactlyOnce?: ExactlyOnce;
  /** The polling relay (default) or the WAL relay; `scenario` is already its version for this mode. */
  relayMode?: RelayMode;
  /** With the WAL relay: the outbox's insert-only mode (relay-1 creates the slot with --insert-only). */
  insertOnly?: boolean;
  /** What the workload writes and the relays relay: the outbox (default) or a state-column table. */
  source?: SourceKind;
  log: (line: string) => void;
}

export interface ScenarioResult {
  scenario: string;
  transport: string;
  seed: number;
  messages: number;
  pass: boolean;
  failures: string[];
  figures: Figures;
  details: CheckDetails & {
    drained: boolean;
    rolledBackOnPurpose: number;
    unknownCommitOutcome: number;
    failedTransactions: number;
    workloadSeconds: number;
    relayKills: number;
    consumerKills: number;
    /** Consumer exits the suite did not cause (poison messages kill their process). */
    consumerDeaths: number;
    relayDeaths: number;
    /** WAL mode: each takeover of the slot, ms from the holder's death or freeze to another relay reading it. */
    takeoversMs?: number[];
    /**
     * Ids the producers drew (enqueues that returned), those drawn twice, and those not above every id their
     * producer drew before (faults/id-order.ts).
     */
    idsChecked: number;
    duplicateIds: number;
    idsOutOfOrder: number;
    /** clock-step: how far behind the system clock the producers' clock ended. */
    clockBehindMs?: number;
    /** clock-step: the longest the workload's process (the producer) was blocked while it ran. */
    maxEventLoopDelayMs?: number;
  };
  /** The fault timeline: seconds since the workload started, and what happened. */
  faults: Array<{ at: number; what: string }>;
  durationSeconds: number;
  error?: string;
}

/** Seed of one scenario within a run: `all --seed 7` and `<scenario> --seed 7` run the same schedule. */
export function scenarioSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (const c of name) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One scenario: fresh schema and topic, relays and consumers as real processes, the paced workload and the
 * nemesis side by side, then heal, drain (bounded), stop everything, read the topic and check.
 */
export async function runScenario(scenario: Scenario, o: RunOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const { env, log } = o;
  const seed = scenarioSeed(o.seed, scenario.name);
  const keys = o.keys ?? DEFAULT_KEYS;
  const relayCount = scenario.processes?.relays ?? DEFAULT_RELAYS;
  const consumerCount = scenario.processes?.consumers ?? DEFAULT_CONSUMERS;
  const random = prng(seed);
  const suffix = randomBytes(3).toString('hex');
  const schema = `fx_${scenario.name.replaceAll('-', '_')}_${suffix}`;
  const topic = `zl-fx-${scenario.name}-${suffix}`;
  const timeline: Array<{ at: number; what: string }> = [];
  let t0 = Date.now();
  const event = (what: string) => {
    const at = Math.round((Date.now() - t0) / 100) / 10;
    timeline.push({ at, what });
    log(`${scenario.name} +${at.toFixed(1)}s ${what}`);
  };

  const pool = new pg.Pool({ connectionString: env.postgres.url, max: 24, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => {});
  await migrate(pgDatabase({ pool }), schema);
  await pool.query(businessSchemaSql(schema));
  const stateColumn = o.source === 'state-column';
  const reader = stateColumn ? stateColumnLedger : outboxLedger;
  if (stateColumn) await createLotteryTables(pgDatabase({ pool }), schema);
  const settingsFile = stateColumn ? writeSettingsFile(schema, topic) : undefined;
  const broker = scenarioBroker(env, schema);
  await broker.createTopics(topic, PARTITIONS);
  const transactional = o.exactlyOnce === 'kafka-transactions';
  // The processors' effects: one output record per order (its .dlq twin is made too, and stays empty).
  const outputTopic = `${topic}.out`;
  if (transactional) await broker.createTopics(outputTopic, PARTITIONS);
  // waitStableMs 0: what is committed now (drain progress); otherwise the final read, once no transaction is open.
  const effectsOnTopic = async (waitStableMs: number): Promise<EffectsOnTopic> => ({
    outputs: await readCommittedTopic(outputTopic, env.kafkaDirect, waitStableMs),
    // The processor dead-letters to the input's <topic>.dlq, inside its transaction.
    deadLettered: await readCommittedTopic(`${topic}.dlq`, env.kafkaDirect, waitStableMs),
  });

  const group = `zl-fx-${suffix}`;
  let consumersStarted = 0;
  const consumers = consumerGroup({
    count: consumerCount,
    transactional,
    env: {
      ZL_FX_PG_URL: env.pgClientUrl,
      ZL_FX_SCHEMA: schema,
      ...broker.consumerEnv,
      ZL_FX_TOPIC: topic,
      ZL_FX_GROUP: group,
      ZL_FX_REDIS_URL: env.redis.url,
      ZL_FX_OFFSETS: o.offsets ?? 'broker',
      // Set either way, so a switch left in the caller's environment never breaks a normal run.
      ZL_FX_BREAK:
        o.broken === 'effect-outside-transaction' ||
        o.broken === 'offsets-outside-transaction' ||
        o.broken === 'db-offsets-outside-transaction' ||
        o.broken === 'log-offsets-before-effect'
          ? o.broken
          : '',
      ZL_FX_OUTPUT_TOPIC: outputTopic,
    },
    onReport: (r) => {
      if (r.kind === 'started') consumersStarted++;
    },
  });
  const slot = o.relayMode === 'wal' ? new SlotHolders() : undefined;
  // clock-step: the producers' outboxes read a clock the nemesis steps back. Every run logs the ids drawn.
  const producerClock = scenario.steppedClock ? new SteppedClock() : undefined;
  // A Snowflake generator sits out a backward step by spinning on the clock: the producer's whole process
  // (here the workload's) stops for that long, which this measures.
  const eventLoop = producerClock ? monitorEventLoopDelay({ resolution: 10 }) : undefined;
  const idLogs: IdLog[] = [];
  const relays = relayGroup({
    count: relayCount,
    pgUrl: env.pgClientUrl,
    schema,
    ...broker.relay,
    ...(settingsFile ? { settingsFile } : {}),
    brokenRelay: o.broken === 'relay-ack-before-send' || o.broken === 'claim-without-key-hold' ? o.broken : undefined,
    ...(slot
      ? {
          wal: { confirmBeforeSend: o.broken === 'wal-confirm-before-send', insertOnly: o.insertOnly === true },
          onStart: slot.started,
          onLine: slot.line,
        }
      : {}),
  });

  let error: string | undefined;
  let drained = false;
  let workloadRunning = true;
  let workloadDoneAt = 0;
  let healedAt = 0;
  let recoveredAt = 0;
  const abort = new AbortController();
  let workload: Awaited<ReturnType<typeof runWorkload>> | undefined;
  try {
    consumers.startAll();
    relays.startAll();
    // Node processes start slowly on a loaded 2-core machine (seven at once in WAL mode).
    const startDeadline = Date.now() + 120_000;
    while (consumersStarted < consumerCount) {
      if (Date.now() > startDeadline) throw new Error(`consumers did not start within 120 s\n${consumers.logs()}`);
      await wait(100);
    }
    // Rows committed before the slot exists are handed to the polling path when it is made: the stream is
    // the path under test, so the workload starts once a relay reads the slot.
    if (slot) await slot.holder(120_000, { standby: false });
    log(`${scenario.name}: ${relayCount} relays and ${consumerCount} consumers started in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const rate = Math.min(o.rate, o.messages / scenario.minWorkloadSeconds);
    t0 = Date.now();
    log(`${scenario.name}: ${o.messages} messages over ${keys} keys at ${Math.round(rate)}/s; ${scenario.summary}`);
    const ctx: NemesisContext = {
      env,
      relays,
      consumers,
      topic,
      schema,
      partitions: PARTITIONS,
      ...(slot ? { slot } : {}),
      ...(producerClock ? { producerClock } : {}),
      random: prng(seed ^ 0x5bd1e995),
      workloadRunning: () => workloadRunning,
      pause: wait,
      event,
    };
    const failuresOf = scenario.failures ?? { transient: 0, permanent: 0, poison: 0 };
    eventLoop?.enable();
    const [workloadOutcome, nemesisOutcome] = await Promise.allSettled([
      runWorkload({
        pool,
        outboxes: Array.from({ length: scenario.producers ?? 1 }, (_, i) => {
          const producerId = i === 0 ? 'fx-orders' : `fx-orders-${i + 1}`;
          const clock = {
            ...(producerClock ? { clock: producerClock } : {}),
            ...(scenario.snowflakeIds ? { ids: { workerId: i + 1 } } : {}),
          };
          const outbox =
            o.broken === 'producer-without-key-lock'
              ? createOutbox({ store: { outbox: new OutboxWithoutKeyLock(schema) }, producerId, ...clock })
              : testOutbox({ schema, producerId, ...clock });
          const logged = loggingIds(o.broken === 'ids-follow-clock' && producerClock ? idsFollowClock(outbox, producerClock) : outbox);
          idLogs.push(logged.log);
          return logged.outbox;
        }),
        schema,
        topic,
        messages: o.messages,
        keys,
        workers: 16,
        rollbackRate: 0.05,
        ratePerSecond: rate,
        failures: failuresOf,
        random,
        signal: abort.signal,
        ...(stateColumn
          ? { write: (client: pg.PoolClient, key: string, payloads: FxPayload[]) => writeAwards(client, schema, key, payloads) }
          : {}),
      }).finally(() => {
        workloadRunning = false;
        eventLoop?.disable();
        workloadDoneAt = Date.now();
        event('workload finished');
      }),
      scenario.nemesis(ctx).finally(() => {
        healedAt = Date.now();
      }),
    ]);
    if (nemesisOutcome.status === 'rejected') {
      error = `nemesis: ${(nemesisOutcome.reason as Error)?.message ?? nemesisOutcome.reason}`;
      log(`${scenario.name}: ${error}`);
    }
    if (workloadOutcome.status === 'rejected') throw workloadOutcome.reason;
    workload = workloadOutcome.value;
    await healEverything(env);
    event('faults healed; draining');

    // Drain: until every committed message has its effect or dead letter and no outbox row waits, or
    // nothing moved for stallSeconds (what is missing then is not coming), or the hard bound.
    const hardDeadline = Date.now() + Math.max(180, o.messages / 100) * 1_000;
    let last = { pending: -1, unsent: -1 };
    // A costly reading is taken at most every progressEveryMs, the last one answering in between: the
    // processors' outcomes are records on topics, read back whole (read_committed); the reader says its own.
    const progressEveryMs = transactional ? 5_000 : (reader.progressEveryMs ?? 0);
    let lastRead = 0;
    const progress = async () => {
      if (Date.now() - lastRead < progressEveryMs) return last;
      lastRead = Date.now();
      if (!transactional) return reader.outstanding(pool, schema);
      const seen = await effectsOnTopic(0);
      return outstandingOnTopic(pool, schema, new Set([...seen.outputs, ...seen.deadLettered].map((r) => r.id)));
    };
    let lastMove = Date.now();
    let lastReport = Date.now();
    for (;;) {
      const now = await progress().catch(() => last);
      if (Date.now() - lastReport >= 5_000) {
        lastReport = Date.now();
        log(`${scenario.name}: draining, ${now.pending} committed messages without outcome, ${now.unsent} outbox rows unsent`);
      }
      if (now.pending === 0 && now.unsent === 0) {
        drained = true;
        recoveredAt = Date.now();
        break;
      }
      if (now.pending !== last.pending || now.unsent !== last.unsent) lastMove = Date.now();
      last = now;
      if (Date.now() - lastMove > o.stallSeconds * 1_000 || Date.now() > hardDeadline) {
        recoveredAt = Date.now();
        event(`drain gave up: ${now.pending} committed messages without outcome, ${now.unsent} outbox rows unsent`);
        if (now.unsent === 0 && broker.describeGroup) log(await broker.describeGroup(topic, group));
        break;
      }
      await wait(250);
    }
    if (drained) event('drained: every committed message has its outcome');
  } catch (e) {
    error = (e as Error).stack ?? String(e);
    log(`${scenario.name}: ${error}`);
  } finally {
    abort.abort();
    await Promise.all([consumers.stopAll(), relays.stopAll()]);
    await healEverything(env).catch(() => {});
  }

  let records: TopicRecord[] = [];
  let effects: EffectsOnTopic | undefined;
  try {
    records = await broker.readTopic(topic);
    // A SIGKILLed processor's open transaction is aborted when it restarts, or after its timeout (60 s).
    if (transactional) effects = await effectsOnTopic(90_000);
  } catch (e) {
    error ??= `reading the topic: ${(e as Error).message}`;
  }
  const checked = await check(
    pool,
    schema,
    records,
    workload ?? { committed: new Set(), rolledBack: new Set() },
    transactional ? (effects ?? { outputs: [], deadLettered: [] }) : undefined,
    reader,
  );
  if (settingsFile) rmSync(settingsFile, { force: true });
  // The slot would hold WAL back for the rest of the run: every relay has stopped, so it is free to drop.
  if (slot) {
    await pool
      .query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active', [
        `zeroloss_${schema}`,
      ])
      .catch((e: Error) => log(`${scenario.name}: dropping the slot: ${e.message}`));
    await pool.query(`drop publication if exists "zeroloss_${schema}_outbox"`).catch(() => {});
  }
  await pool.end().catch(() => {});
  await broker.cleanup(topic);
  if (transactional) await broker.cleanup(outputTopic);

  const settledAt = Math.max(healedAt, workloadDoneAt);
  const figures: Figures = {
    ...checked.figures,
    recoverySeconds: Math.round(Math.max(0, recoveredAt - settledAt) / 100) / 10,
  };
  const why = failures(figures, checked.details);
  const ids = idChecks(idLogs);
  if (ids.duplicateIds > 0) why.push(`duplicateIds ${ids.duplicateIds}`);
  if (ids.idsOutOfOrder > 0) why.push(`idsOutOfOrder ${ids.idsOutOfOrder} (${ids.samples.slice(0, 2).join('; ')})`);
  if (!drained && why.length === 0) why.push('did not drain');
  if (error) why.push(`error: ${error.split('\n')[0]}`);
  if (why.length > 0)
    log(
      `${scenario.name}: FAILED (${why.join(', ')})\n${relays.logs()}\n${consumers.logs()}\nconsumer errors: ${consumers.errors.slice(0, 10).join('\n')}`,
    );
  return {
    scenario: scenario.name,
    transport: env.transport,
    seed: o.seed,
    messages: o.messages,
    pass: why.length === 0,
    failures: why,
    figures,
    details: {
      ...checked.details,
      drained,
      unknownCommitOutcome: workload?.unknown.size ?? 0,
      failedTransactions: workload?.failedTransactions ?? 0,
      workloadSeconds: Math.round((workload?.durationMs ?? 0) / 100) / 10,
      relayKills: relays.kills,
      consumerKills: consumers.kills,
      consumerDeaths: consumers.deaths,
      relayDeaths: relays.deaths,
      ...(slot ? { takeoversMs: slot.takeoversMs } : {}),
      idsChecked: ids.idsChecked,
      duplicateIds: ids.duplicateIds,
      idsOutOfOrder: ids.idsOutOfOrder,
      ...(producerClock ? { clockBehindMs: producerClock.behindMs } : {}),
      ...(eventLoop ? { maxEventLoopDelayMs: Math.round(eventLoop.max / 1e6) } : {}),
    },
    faults: timeline,
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
    ...(error ? { error } : {}),
  };
}
