import { Admin } from '@platformatic/kafka';
import { killNode, nodePid, pauseNode, resumeNode, startNode, stopNode } from '../infra/kafka/kafka.ts';
import type { Environment } from './environment.ts';
import type { ProcessGroup } from './processes.ts';
import type { SlotHolders } from './slot-holders.ts';
import type { SteppedClock } from './stepped-clock.ts';

/** What a fault schedule acts on, and its clock. */
export interface NemesisContext {
  env: Environment;
  relays: ProcessGroup;
  consumers: ProcessGroup;
  topic: string;
  /** The scenario's zeroloss schema (its slot is zeroloss_<schema> in WAL mode). */
  schema: string;
  partitions: number;
  /** WAL mode (--relay-mode wal): which relay reads the slot, and the takeover times. */
  slot?: SlotHolders;
  /** clock-step: the clock the producers' outboxes read, which the schedule steps back. */
  producerClock?: SteppedClock;
  random: () => number;
  workloadRunning(): boolean;
  /**
   * Waits `ms` on the schedule's clock. A fault schedule is the one place that waits on time rather than on
   * a condition: "keep the broker down for 8 s" is the fault itself.
   */
  pause(ms: number): Promise<void>;
  /** Records a fault event on the run's timeline. */
  event(what: string): void;
}

export function between(random: () => number, min: number, max: number): number {
  return Math.round(min + random() * (max - min));
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

// ---------------------------------------------------------------------------------------------------------
// processes

/** SIGKILLs a random member at random moments while the workload runs, and at least `minKills` times. */
export async function killRepeatedly(
  ctx: NemesisContext,
  group: ProcessGroup,
  options: { minKills: number; gapMs: [number, number] },
): Promise<void> {
  let kills = 0;
  while (ctx.workloadRunning() || kills < options.minKills) {
    await ctx.pause(between(ctx.random, ...options.gapMs));
    const name = pick(ctx.random, group.names);
    await group.killAndRestart(name);
    kills++;
    ctx.event(`SIGKILL ${name}, restarted`);
  }
}

/**
 * SIGSTOPs a random member for `frozenMs` (longer than its lease or session, so the others take its work
 * over), SIGCONTs it, `times` times with `gapMs` between: the zombie wakes up with its old batch or
 * transaction in hand and must not lose, reorder or apply twice anything by finishing it.
 */
export async function freezeRepeatedly(
  ctx: NemesisContext,
  group: ProcessGroup,
  options: { times: number; frozenMs: number; gapMs: [number, number] },
): Promise<void> {
  for (let i = 0; i < options.times; i++) {
    await ctx.pause(between(ctx.random, ...options.gapMs));
    const name = pick(ctx.random, group.names);
    ctx.event(`SIGSTOP ${name} for ${options.frozenMs} ms`);
    if (await group.freeze(name, options.frozenMs, (ms) => ctx.pause(ms))) ctx.event(`SIGCONT ${name}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Kafka nodes (the cluster's own nodes; never the shared single node)

function admin(ctx: NemesisContext): Admin {
  return new Admin({ clientId: 'zl-fx-nemesis', bootstrapBrokers: ctx.env.kafkaDirect, timeout: 5_000, retries: 2 });
}

/** The node leading `partition` of the suite's topic. */
export async function leaderOf(ctx: NemesisContext, partition: number): Promise<number> {
  const a = admin(ctx);
  try {
    const metadata = await a.metadata({ topics: [ctx.topic], forceUpdate: true });
    const leader = metadata.topics.get(ctx.topic)?.partitions[partition]?.leader;
    if (leader === undefined || leader < 1) throw new Error(`partition ${partition} of ${ctx.topic} has no leader`);
    return leader;
  } finally {
    await a.close().catch(() => {});
  }
}

/**
 * Waits until every partition of the topic and of the group offsets topic has its full ISR again, so the
 * next node fault is again a single fault (a second node down before the first caught up would be two).
 */
export async function waitFullyReplicated(ctx: NemesisContext, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const topics = [ctx.topic, '__consumer_offsets'];
  for (;;) {
    const a = admin(ctx);
    try {
      const metadata = await a.metadata({ topics, forceUpdate: true });
      const behind = topics.flatMap((t) => (metadata.topics.get(t)?.partitions ?? []).filter((p) => p.isr.length < p.replicas.length));
      if (behind.length === 0 && topics.every((t) => metadata.topics.has(t))) return;
    } catch {
      // a node still starting: ask again
    } finally {
      await a.close().catch(() => {});
    }
    if (Date.now() > deadline) throw new Error(`replicas of ${topics.join(', ')} not back in sync after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function killLeaderAndRestart(ctx: NemesisContext, downMs: number): Promise<void> {
  const partition = Math.floor(ctx.random() * ctx.partitions);
  const node = await leaderOf(ctx, partition);
  await killNode(node);
  ctx.event(`SIGKILL kafka node ${node} (leader of partition ${partition})`);
  await ctx.pause(downMs);
  await startNode(node);
  ctx.event(`kafka node ${node} restarted`);
  await waitFullyReplicated(ctx);
  ctx.event('all replicas in sync');
}

export async function restartNodeCleanly(ctx: NemesisContext, node: number, downMs: number): Promise<void> {
  await stopNode(node, { timeoutMs: 30_000 });
  ctx.event(`kafka node ${node} stopped (SIGTERM, controlled shutdown)`);
  await ctx.pause(downMs);
  await startNode(node);
  ctx.event(`kafka node ${node} started`);
  await waitFullyReplicated(ctx);
  ctx.event('all replicas in sync');
}

export async function pauseLeader(ctx: NemesisContext, pausedMs: number): Promise<void> {
  const partition = Math.floor(ctx.random() * ctx.partitions);
  const node = await leaderOf(ctx, partition);
  await pauseNode(node);
  ctx.event(`SIGSTOP kafka node ${node} (leader of partition ${partition}) for ${pausedMs / 1000} s`);
  await ctx.pause(pausedMs);
  await resumeNode(node);
  ctx.event(`SIGCONT kafka node ${node}`);
  await waitFullyReplicated(ctx);
  ctx.event('all replicas in sync');
}

// ---------------------------------------------------------------------------------------------------------
// Postgres and Redis (throwaway instances)

export async function restartPostgres(ctx: NemesisContext): Promise<void> {
  const t0 = Date.now();
  await ctx.env.postgres.restart('immediate');
  ctx.event(`postgres restarted -m immediate (crash restart, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

export async function redisOutage(ctx: NemesisContext, downMs: number): Promise<void> {
  await ctx.env.redis.stop();
  ctx.event(`redis stopped for ${downMs / 1000} s`);
  await ctx.pause(downMs);
  await ctx.env.redis.start();
  await ctx.env.redis.flush();
  ctx.event('redis started again, flushed (empty)');
}

// ---------------------------------------------------------------------------------------------------------
// the run's own Redis Streams or RabbitMQ broker (throwaway; never the shared servers)

/**
 * Takes the run's broker down and brings it back on the same data after `downMs`. 'clean': Redis
 * `SHUTDOWN` (nosave: the append-only file is all that is kept), RabbitMQ `rabbitmqctl stop_app` /
 * `start_app`. 'crash': SIGKILL of the server process (redis-server, RabbitMQ's Erlang VM), then a start
 * on the same directory, so only what each had written to the OS before replying survives.
 */
export async function restartBroker(ctx: NemesisContext, mode: 'clean' | 'crash', downMs: number): Promise<void> {
  const broker = ctx.env.broker;
  if (!broker) throw new Error('restartBroker: the run has no broker of its own (Kafka faults are the kafka-* scenarios)');
  const t0 = Date.now();
  if (broker.kind === 'redis') {
    if (mode === 'clean') await broker.redis.stop();
    else await broker.redis.kill();
    ctx.event(`redis broker ${mode === 'clean' ? 'SHUTDOWN' : 'SIGKILLed'} for ${downMs / 1000} s`);
    await ctx.pause(downMs);
    await broker.redis.start();
  } else {
    if (mode === 'clean') await broker.rabbitmq.stopApp();
    else await broker.rabbitmq.kill();
    ctx.event(`rabbitmq broker ${mode === 'clean' ? 'stop_app' : 'Erlang VM SIGKILLed'} for ${downMs / 1000} s`);
    await ctx.pause(downMs);
    await (mode === 'clean' ? broker.rabbitmq.startApp() : broker.rabbitmq.start());
  }
  ctx.event(`broker back on the same data (${((Date.now() - t0) / 1000).toFixed(1)} s after it went down)`);
}

// ---------------------------------------------------------------------------------------------------------
// network, through the suite's proxies

export type NetworkFault = 'cut' | 'stall' | 'delay';

export async function networkFault(
  ctx: NemesisContext,
  target: 'kafka' | 'postgres',
  fault: NetworkFault,
  ms: number,
  options: { oneBroker?: boolean; delayMs?: number } = {},
): Promise<void> {
  const proxies = target === 'postgres' ? [ctx.env.pgProxy] : ctx.env.kafkaProxies;
  const chosen = options.oneBroker ? [pick(ctx.random, proxies)] : proxies;
  const names = chosen.map((p) => p.name).join(', ');
  if (fault === 'cut') {
    let reset = 0;
    for (const p of chosen) {
      p.refuse(true);
      reset += p.cut();
    }
    ctx.event(`${names}: ${reset} connections reset, new ones refused for ${ms / 1000} s`);
  } else if (fault === 'stall') {
    for (const p of chosen) p.stall(true);
    ctx.event(`${names}: partitioned (nothing flows, new connections hang) for ${ms / 1000} s`);
  } else {
    for (const p of chosen) p.delay(options.delayMs ?? 100);
    ctx.event(`${names}: ${options.delayMs ?? 100} ms added each way for ${ms / 1000} s`);
  }
  await ctx.pause(ms);
  for (const p of chosen) p.heal();
  ctx.event(`${names}: healed`);
}

// ---------------------------------------------------------------------------------------------------------

/** Undoes whatever a failed or interrupted schedule left behind: every node running, every service up, every proxy healed. */
export async function healEverything(env: Environment): Promise<void> {
  for (const p of [...env.kafkaProxies, env.pgProxy]) p.heal();
  if (env.kafkaMode === 'cluster') {
    for (const n of [1, 2, 3]) {
      if ((await nodePid(n)) !== undefined) await resumeNode(n);
      else await startNode(n);
    }
  }
  await env.postgres.start();
  await env.redis.start();
  if (env.broker?.kind === 'redis') await env.broker.redis.start();
  if (env.broker?.kind === 'rabbitmq') await env.broker.rabbitmq.start();
}
