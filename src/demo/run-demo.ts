import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PointsBalances } from '../examples/points/points-audit.ts';
import { type DemoEnvironment, type KeptData, openEnvironment } from './demo-environment.ts';
import { DemoInstances } from './demo-instances.ts';
import type { RoleConfig, RoleEvent } from './demo-role.ts';
import { retryFloor } from './retry-floor.ts';
import {
  type BusinessReconciliation,
  type Figures,
  type Scenario,
  type ScenarioContext,
  type ScenarioName,
  type ServiceFigures,
  scenarios,
} from './scenarios.ts';

export interface DemoOptions {
  scenario: ScenarioName;
  users: number;
  /** Draws (lottery) or orders (points) in total, spread over the users. */
  units: number;
  /** Units started per second at most. */
  rate: number;
  /** Postgres instead of the embedded PGlite; instances then run as child processes. */
  pgUrl?: string;
  /** Kafka, Redis Streams or RabbitMQ (at most one) instead of the table log. */
  kafka?: string[];
  redis?: string;
  rabbitmq?: string;
  seed: number;
  /** Keep the database (directory or schema) and topics afterwards. */
  keep: boolean;
  /** Mean time between two kills. */
  killEveryMs: number;
  /** Delay between a handler's retries (the source's 2 s makes a run with many crashes slow, see the help). */
  retryDelayMs: number;
  /** Give up waiting for every message to settle after this long. */
  settleTimeoutMs: number;
  /** Orders: the points service skips this many deductions on purpose, for the business reconciliation to find. */
  skipPoints?: number;
  onInfo?: (line: string) => void;
  onProgress?: (progress: DemoProgress) => void;
  /**
   * Serve the dashboard on this port (loopback) from the process that holds the database (PGlite is
   * single-process), from setup until `hold` resolves after the run, so the result can be looked at.
   */
  dashboard?: { port: number; hold: (url: string, result: DemoResult) => Promise<void> };
}

export interface DemoProgress {
  elapsedMs: number;
  phase: 'load' | 'settle';
  produced: number;
  target: number;
  figures: Figures;
  duplicatesSkipped: number;
  retried: number;
  relayKills: number;
  consumerKills: number;
  duplicatesInjected: number;
}

export interface DemoResult {
  scenario: ScenarioName;
  title: string;
  unit: string;
  database: string;
  transport: string;
  seed: number;
  users: number;
  committed: number;
  published: number;
  delivered: number;
  deliveredByType: Record<string, number>;
  duplicatesSkipped: number;
  retried: number;
  deadLettered: number;
  expectedDeadLettered: number;
  lost: number;
  appliedTwice: number;
  orderViolations: number;
  /** From the first unit of work to the last message settled (delivered or dead-lettered). */
  elapsedMs: number;
  /** Start-up before that: database, migrations, topics, instances. */
  setupMs: number;
  /**
   * Lottery: from the first unit of work to the earliest the last message could have settled given when
   * each was published and the retries its planned failures cost at this run's retry delay, with handling,
   * kills and rebalances free (retry-floor.ts). `elapsedMs` minus this is what the run cost beyond its own
   * deliberate retries.
   */
  retryFloorMs?: number;
  /** The delay between a handler's retries in this run. */
  retryDelayMs: number;
  /**
   * Lottery: the retries the fault plan calls for, counted over the published messages. `retried` above
   * it are attempts run again because a kill or a rebalance cut them short (a record that waited for its
   * retry goes on from its next attempt).
   */
  plannedRetries?: number;
  throughputPerSec: number;
  faults: { relayKills: number; consumerKills: number; duplicatesInjected: number; unexpectedExits: number };
  /**
   * Attempts run alone as poison suspects: of records whose handler was running when an instance died, each
   * attempt after that (from the consumers' `poison-suspect` events; a killed consumer's last few may be missing).
   */
  poisonSuspects: number;
  checks: {
    settled: boolean;
    parked: number;
    deliveredAndDeadLettered: number;
    unexpectedDeadLetters: number;
    missingDeadLetters: number;
  };
  points?: PointsBalances;
  /** Orders: each service's figures, and the business reconciliation after the run. */
  services?: Record<string, ServiceFigures>;
  reconciliation?: BusinessReconciliation;
  examples: { lost: string[]; appliedTwice: string[]; outOfOrder: string[] };
  errors: { count: number; sample: string[] };
  /** Where the data was kept (`--keep`). */
  kept?: KeptData;
  ok: boolean;
}

/**
 * Runs one example system end to end under faults and audits the result from the databases. The
 * workload (draws or orders) runs on the main thread; one relay and two consumer instances run beside
 * it and are killed in turn, without warning, every `killEveryMs` on average, while copies of records
 * already on the transport are published again. When the workload is done and every instance has been
 * killed at least once, the faults stop, the demo waits until every committed message is delivered or
 * dead-lettered and the group has caught up, stops the instances gracefully and counts.
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const scenario = scenarios[o.scenario];
  const runId = randomBytes(4).toString('hex');
  const began = Date.now();
  const env = await openEnvironment({ pgUrl: o.pgUrl, kafka: o.kafka, redis: o.redis, rabbitmq: o.rabbitmq, runId });
  let result: DemoResult | undefined;
  let board: { url: string; close(): Promise<void> } | undefined;
  try {
    const ctx: ScenarioContext = {
      schema: env.schema,
      topic: `zl-demo-${runId}-${scenario.name}`,
      groupId: scenario.groupId,
      seed: o.seed,
      ...(o.skipPoints ? { skipPoints: o.skipPoints } : {}),
    };
    o.onInfo?.(`database: ${env.databaseLabel}`);
    o.onInfo?.(`transport: ${env.transportLabel}, topic ${ctx.topic} (${scenario.partitions} partitions, keyed by user)`);
    const users = Array.from(
      { length: o.users },
      (_, i) => `${{ lottery: 'user', points: 'account', orders: 'customer' }[o.scenario]}-${String(i + 1).padStart(4, '0')}`,
    );
    await scenario.prepare(env.db, ctx, users, o.units);
    await env.createTopic(ctx.topic, scenario.partitions, scenario.groups ?? [ctx.groupId]);
    if (o.dashboard) {
      // Loaded only when asked for.
      const { startDashboard } = await import('../dashboard/start-dashboard.ts');
      board = await startDashboard(
        {
          schema: env.schema,
          store: env.store.operations,
          deadLetters: env.store.deadLetters,
          broker: env.inspector,
          publisher: () => env.publisher,
          source: env.databaseLabel,
        },
        { port: o.dashboard.port, groups: [...(scenario.groups ?? [ctx.groupId])], sampleEveryMs: 2_000 },
      );
      o.onInfo?.(`dashboard: ${board.url}/`);
    }

    const events = new EventCounts();
    const instances = new DemoInstances(env.host, (name, event) => events.add(name, event));
    const role = (r: 'relay' | 'consumer', name: string): RoleConfig => ({
      role: r,
      name,
      scenario: scenario.name,
      ctx,
      transport: env.transport,
      runId,
      retryDelayMs: o.retryDelayMs,
    });
    const roles = [role('relay', 'relay'), role('consumer', 'consumer-1'), role('consumer', 'consumer-2')];
    await Promise.all(roles.map((r) => instances.start(r)));
    o.onInfo?.(
      `running: ${roles.map((r) => r.name).join(', ')} as ${env.host.kind === 'thread' ? 'worker threads' : 'child processes'}; ` +
        `${o.units} ${scenario.unit} by ${o.users} users at up to ${o.rate}/s; seed ${o.seed}`,
    );
    const setupMs = Date.now() - began;

    const t0 = Date.now();
    // Where a run's time goes after a kill: when each consumer lost and regained its partitions.
    events.onMove = (name, kind, partitions) => {
      if (partitions.length > 0)
        o.onInfo?.(`${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s ${name}: ${kind} partitions ${partitions.join(',')}`);
    };
    const state = { produced: 0, workloadErrors: 0, loadDone: false, duplicatesInjected: 0, phase: 'load' as 'load' | 'settle' };
    const progress = o.onProgress ? startProgress(o.onProgress, env, scenario, ctx, t0, o.units, state, events, instances) : undefined;

    const workload = runWorkload(
      users,
      o.units,
      o.rate,
      scenario.producer(env.store, ctx, seeded(o.seed)),
      (error) => {
        state.workloadErrors++;
        events.error(`workload: ${(error as Error).message}`);
      },
      () => state.produced++,
    ).finally(() => {
      state.loadDone = true;
    });
    const faults = injectFaults(
      o,
      instances,
      roles,
      () => state.loadDone,
      () => state.duplicatesInjected === 0,
      async () => {
        const records = await scenario.sentRecords(env.db, ctx, Math.max(1, Math.round(o.rate * 0.025)));
        if (records.length === 0) return;
        const outcomes = await env.publisher.publish(records);
        state.duplicatesInjected += outcomes.filter((r) => r.ok).length;
        // A refused copy is no fault of the system under test, but a run that injected none proves less: say why.
        const refused = outcomes.find((r) => !r.ok);
        if (refused && !refused.ok) throw refused.error;
      },
      (error) => events.error(`fault injection: ${(error as Error).message}`),
    );
    await workload;
    await faults;

    state.phase = 'settle';
    const settled = await settle(env, scenario, ctx, o.settleTimeoutMs);
    const elapsedMs = Date.now() - t0;
    const waits = await scenario.plannedWaits?.(env.db, ctx);
    const floor = waits && retryFloor(waits, o.retryDelayMs);
    await progress?.stop();
    await instances.stopAll();
    // Before the audit, so that the audit counts what the repair applied (tagged as such in the rows).
    const reconciliation = await scenario.reconcile?.(env.db, ctx);
    const audit = await scenario.audit(env.db, ctx);

    const checks = {
      settled,
      parked: audit.parked,
      deliveredAndDeadLettered: audit.deliveredAndDeadLettered,
      unexpectedDeadLetters: audit.unexpectedDeadLetters,
      missingDeadLetters: audit.missingDeadLetters,
    };
    const ok =
      audit.lost === 0 &&
      audit.appliedTwice === 0 &&
      audit.orderViolations === 0 &&
      Object.values(checks).every((v) => v === true || v === 0) &&
      (audit.points?.reconciled ?? true) &&
      Object.values(audit.services ?? {}).every((s) => s.holdersOff === 0) &&
      (reconciliation?.ok ?? true);
    result = {
      scenario: scenario.name,
      title: scenario.title,
      unit: scenario.unit,
      database: env.databaseLabel,
      transport: env.transportLabel,
      seed: o.seed,
      users: o.users,
      committed: audit.committed,
      published: audit.published,
      delivered: audit.delivered,
      deliveredByType: audit.deliveredByType,
      duplicatesSkipped: events.duplicates,
      retried: events.retries,
      deadLettered: audit.deadLettered,
      expectedDeadLettered: audit.expectedDeadLettered,
      lost: audit.lost,
      appliedTwice: audit.appliedTwice,
      orderViolations: audit.orderViolations,
      elapsedMs,
      setupMs,
      ...(floor === undefined ? {} : { retryFloorMs: Math.max(0, Math.round(floor - t0)) }),
      retryDelayMs: o.retryDelayMs,
      ...(waits ? { plannedRetries: waits.reduce((sum, w) => sum + w.retries, 0) } : {}),
      throughputPerSec: Math.round(((audit.delivered + audit.deadLettered) / Math.max(1, elapsedMs)) * 1000),
      faults: {
        relayKills: instances.kills.relay,
        consumerKills: instances.kills.consumer,
        duplicatesInjected: state.duplicatesInjected,
        unexpectedExits: instances.unexpectedExits,
      },
      checks,
      poisonSuspects: events.poisonSuspects,
      ...(audit.points ? { points: audit.points } : {}),
      ...(audit.services ? { services: audit.services } : {}),
      ...(reconciliation ? { reconciliation } : {}),
      examples: audit.examples,
      errors: { count: events.errors, sample: events.errorSample },
      ok,
    };
  } finally {
    if (board) {
      if (result) await o.dashboard?.hold(board.url, result);
      await board.close();
    }
    const kept = await env.close(o.keep);
    if (kept && result) result.kept = kept;
  }
  return result;
}

/** What the instances reported. Informational: lost and applied-twice never come from here. */
class EventCounts {
  duplicates = 0;
  retries = 0;
  deadLetters = 0;
  poisonSuspects = 0;
  errors = 0;
  readonly errorSample: string[] = [];
  /** Told of each partition move (a consumer's assignment changing after a kill or a restart). */
  onMove: ((name: string, kind: 'assigned' | 'revoked', partitions: number[]) => void) | undefined;

  add(name: string, event: RoleEvent): void {
    if (event.kind === 'processed' && event.duplicate) this.duplicates++;
    else if (event.kind === 'retry') this.retries++;
    else if (event.kind === 'dead-letter' && event.recorded) this.deadLetters++;
    else if (event.kind === 'poison-suspect') this.poisonSuspects++;
    else if (event.kind === 'assigned' || event.kind === 'revoked') this.onMove?.(name, event.kind, event.partitions);
    else if (event.kind === 'error') this.error(event.message);
  }

  error(message: string): void {
    this.errors++;
    if (this.errorSample.length < 10) this.errorSample.push(message.slice(0, 300));
  }
}

/**
 * Starts `units` units of work, at most `rate` per second. Each user works one unit at a time (a user
 * draws, sees the result, draws again), so one user's rows are committed in the order they were made;
 * users take turns, so their work interleaves.
 */
async function runWorkload(
  users: string[],
  units: number,
  rate: number,
  act: (user: string) => Promise<void>,
  onError: (error: unknown) => void,
  onDone: () => void,
): Promise<void> {
  const remaining = new Map(users.map((u, i) => [u, Math.floor(units / users.length) + (i < units % users.length ? 1 : 0)]));
  const queue = users.filter((u) => (remaining.get(u) ?? 0) > 0);
  const start = Date.now();
  let issued = 0;
  const lane = async () => {
    for (let user = queue.shift(); user !== undefined; user = queue.shift()) {
      const due = start + (issued++ / rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      try {
        await act(user);
        onDone();
      } catch (error) {
        onError(error);
      }
      const left = (remaining.get(user) ?? 1) - 1;
      remaining.set(user, left);
      if (left > 0) queue.push(user);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, queue.length) }, lane));
}

/**
 * Kills relay, consumer-1, consumer-2, relay, … in turn (each restarted at once), and every 500 ms
 * publishes a few records the transport already holds once more. Runs until the workload is done,
 * every instance has been killed at least once and some copies went out. The two run apart, so a slow duplicate round never
 * delays a kill.
 */
async function injectFaults(
  o: DemoOptions,
  instances: DemoInstances,
  roles: RoleConfig[],
  loadDone: () => boolean,
  injectedNone: () => boolean,
  injectDuplicates: () => Promise<void>,
  onError: (error: unknown) => void,
): Promise<void> {
  let kills = 0;
  const over = () => loadDone() && kills >= roles.length;
  const killing = (async () => {
    while (!over()) {
      await sleep(o.killEveryMs * (0.5 + Math.random()));
      const victim = roles[kills % roles.length] as RoleConfig;
      await instances.killAndRestart(victim.name).catch(onError);
      kills++;
    }
  })();
  // Until at least one round of copies went out, too: on a slow machine the load and the kills can be
  // over before the relay acknowledged anything to copy, and a run without copies proves less.
  const giveUpAt = Date.now() + o.settleTimeoutMs;
  const copiesDue = () => !over() || (injectedNone() && Date.now() < giveUpAt);
  const duplicating = (async () => {
    while (copiesDue()) {
      await sleep(500);
      await injectDuplicates().catch(onError);
    }
  })();
  await Promise.all([killing, duplicating]);
}

/** Waits until every committed message is delivered or dead-lettered and the group has read everything. */
async function settle(env: DemoEnvironment, scenario: Scenario, ctx: ScenarioContext, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const f = await scenario.progress(env.db, ctx);
    if (f.published === f.committed && f.delivered + f.deadLettered >= f.committed) {
      let caughtUp = true;
      for (const groupId of scenario.groups ?? [ctx.groupId]) {
        if ((await env.lag(groupId, ctx.topic).catch(() => -1n)) !== 0n) caughtUp = false;
      }
      if (caughtUp) return true;
    }
    await sleep(250);
  }
  return false;
}

function startProgress(
  report: (p: DemoProgress) => void,
  env: DemoEnvironment,
  scenario: Scenario,
  ctx: ScenarioContext,
  t0: number,
  target: number,
  state: { produced: number; duplicatesInjected: number; phase: 'load' | 'settle' },
  events: EventCounts,
  instances: DemoInstances,
) {
  let running = true;
  const loop = (async () => {
    while (running) {
      await sleep(1_000);
      if (!running) break;
      const figures = await scenario.progress(env.db, ctx).catch((error: unknown) => {
        events.error(`progress: ${(error as Error).message}`);
        return undefined;
      });
      if (!figures || !running) continue;
      report({
        elapsedMs: Date.now() - t0,
        phase: state.phase,
        produced: state.produced,
        target,
        figures,
        duplicatesSkipped: events.duplicates,
        retried: events.retries,
        relayKills: instances.kills.relay,
        consumerKills: instances.kills.consumer,
        duplicatesInjected: state.duplicatesInjected,
      });
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** mulberry32: the workload's prize picks and order sizes replay from the seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
