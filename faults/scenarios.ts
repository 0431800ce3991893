import {
  between,
  freezeRepeatedly,
  killLeaderAndRestart,
  killRepeatedly,
  type NemesisContext,
  networkFault,
  pauseLeader,
  pick,
  redisOutage,
  restartBroker,
  restartNodeCleanly,
  restartPostgres,
} from './nemesis.ts';
import type { TransportKind } from './environment.ts';
import { freezeSlotHolder, killSlotHolder, loseSlot } from './wal-nemesis.ts';

/** Which relay the run uses: the polling relay (default), or the WAL relay (`--relay-mode wal`). */
export type RelayMode = 'poll' | 'wal';

export interface Scenario {
  name: string;
  summary: string;
  /** Needs the 3-node cluster (node faults, Kafka network faults). */
  needsCluster: boolean;
  /** Producers (outboxes with their own producer id) writing the same keys; default 1. */
  producers?: number;
  /** The producers' outboxes read a clock the nemesis steps back (ctx.producerClock; faults/stepped-clock.ts). */
  steppedClock?: boolean;
  /**
   * The producers draw Snowflake ids (worker id 1, 2, …; onClockBackward 'wait', maxBackwardMs 5 s: the
   * outbox's settings when a caller picks Snowflake) instead of the default UUIDv7.
   */
  snowflakeIds?: boolean;
  /** Relay and consumer processes (default 2 and 3). */
  processes?: { relays: number; consumers: number };
  /** The transports it runs on (--transport); Kafka only when absent. */
  transports?: readonly TransportKind[];
  /** The workload lasts at least this long (it is paced), so the faults meet live traffic. */
  minWorkloadSeconds: number;
  /** Shares of messages whose handler fails transiently or permanently; poison is an exact count per run. */
  failures?: { transient: number; permanent: number; poison: number };
  /** The fault schedule; runs beside the workload and heals what it broke before it returns. */
  nemesis(ctx: NemesisContext): Promise<void>;
  /**
   * How it runs with `--relay-mode wal` (what is given replaces the polling version's), or why it does not
   * (a string). Absent: it does not run in WAL mode.
   */
  wal?: string | Partial<Pick<Scenario, 'summary' | 'processes' | 'minWorkloadSeconds' | 'nemesis'>>;
  /** Only with `--relay-mode wal`: the reason it is refused otherwise. */
  walOnly?: string;
}

/**
 * The scenario as it runs in `mode`, or why it does not run there. WAL mode uses three relays unless the
 * scenario says otherwise: the slot holder, and two standbys so that one is always waiting to take over
 * while the other restarts after a kill.
 */
export function inRelayMode(scenario: Scenario, mode: RelayMode): Scenario | { refused: string } {
  if (mode === 'poll') return scenario.walOnly ? { refused: scenario.walOnly } : scenario;
  if (scenario.wal === undefined) return { refused: 'not adapted to the WAL relay (yet)' };
  if (typeof scenario.wal === 'string') return { refused: scenario.wal };
  return { ...scenario, processes: { relays: 3, consumers: 3 }, ...scenario.wal };
}

/** Consumer-side scenarios: the relay mode changes nothing they test. */
const CONSUMER_SIDE = 'its faults are on the consumer side, which the relay mode does not change: run it without --relay-mode wal';

/** Mixed runs every handler fault at once: transient and permanent failures and poison messages. */
const HANDLER_FAULTS = { transient: 0.03, permanent: 0.005, poison: 2 };

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'baseline',
    summary: 'no fault: the control run',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq', 'table-log'],
    minWorkloadSeconds: 10,
    wal: {},
    nemesis: async () => {},
  },
  {
    name: 'relay-kill',
    summary: 'a random relay of two SIGKILLed every 0.3-2.5 s (at least 8 times), restarted at once',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq', 'table-log'],
    minWorkloadSeconds: 15,
    wal: {
      summary:
        'the WAL slot holder of four relays SIGKILLed every 0.3-1.5 s once another stands by (at least 20 times), restarted at once; takeover timed',
      // A killed relay takes 5-25 s to start again on a loaded 2-core machine: four relays and a longer
      // workload keep a standby waiting, so that most kills land while messages flow.
      processes: { relays: 4, consumers: 3 },
      minWorkloadSeconds: 90,
      nemesis: (ctx) => killSlotHolder(ctx, { minKills: 20, gapMs: [300, 1_500] }),
    },
    nemesis: (ctx) => killRepeatedly(ctx, ctx.relays, { minKills: 8, gapMs: [300, 2_500] }),
  },
  {
    name: 'consumer-kill',
    summary: 'a random consumer of three SIGKILLed every 1-4 s (at least 6 times), restarted at once',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq', 'table-log'],
    minWorkloadSeconds: 15,
    wal: CONSUMER_SIDE,
    nemesis: (ctx) => killRepeatedly(ctx, ctx.consumers, { minKills: 6, gapMs: [1_000, 4_000] }),
  },
  {
    name: 'two-producers',
    summary:
      'two producers (own producer ids) write the same keys in concurrent transactions; a relay SIGKILLed every 1-3 s: each key in commit order',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq'],
    producers: 2,
    minWorkloadSeconds: 15,
    wal: 'its kills pick a random relay, most often a standby in WAL mode; relay-kill covers the slot holder',
    nemesis: (ctx) => killRepeatedly(ctx, ctx.relays, { minKills: 4, gapMs: [1_000, 3_000] }),
  },
  {
    name: 'clock-step',
    summary:
      "the producer's clock (injected into its outbox) stepped back 5 s four times while it writes: ids unique and increasing per producer, zl-seq gapless, nothing lost",
    needsCluster: false,
    steppedClock: true,
    minWorkloadSeconds: 25,
    wal: "its fault is the producer's clock, which the relay mode does not change: run it without --relay-mode wal",
    nemesis: async (ctx) => {
      for (let step = 0; step < 4; step++) {
        await ctx.pause(between(ctx.random, 2_000, 4_000));
        ctx.producerClock?.stepBack(5_000);
        ctx.event(`producer clock stepped back 5 s (now ${(ctx.producerClock?.behindMs ?? 0) / 1_000} s behind)`);
      }
    },
  },
  {
    name: 'clock-step-snowflake',
    summary:
      'clock-step with Snowflake ids: stepped back 3 s, 3 s, 8 s, 3 s; a step within maxBackwardMs (5 s) makes the generator wait it out, a longer one makes enqueue throw ZL_CLOCK_MOVED_BACKWARDS until the clock catches up',
    needsCluster: false,
    steppedClock: true,
    snowflakeIds: true,
    minWorkloadSeconds: 30,
    wal: "its fault is the producer's clock, which the relay mode does not change: run it without --relay-mode wal",
    nemesis: async (ctx) => {
      for (const ms of [3_000, 3_000, 8_000, 3_000]) {
        await ctx.pause(between(ctx.random, 2_000, 4_000));
        ctx.producerClock?.stepBack(ms);
        ctx.event(`producer clock stepped back ${ms / 1_000} s (now ${(ctx.producerClock?.behindMs ?? 0) / 1_000} s behind)`);
      }
    },
  },
  {
    name: 'relay-zombie',
    summary: 'a random relay of two SIGSTOPped for 8 s (its lease is 5 s: the other takes its rows), then SIGCONT, three times',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq'],
    minWorkloadSeconds: 30,
    wal: {
      summary:
        'the WAL slot holder SIGSTOPped for 15 s (wal_sender_timeout 10 s, lease 5 s: a standby takes the slot), then SIGCONT, three times',
      minWorkloadSeconds: 45,
      nemesis: (ctx) => freezeSlotHolder(ctx, { times: 3, frozenMs: 15_000, gapMs: [1_500, 3_000] }),
    },
    nemesis: (ctx) => freezeRepeatedly(ctx, ctx.relays, { times: 3, frozenMs: 8_000, gapMs: [1_500, 3_000] }),
  },
  {
    name: 'consumer-zombie',
    summary:
      'a random consumer of three SIGSTOPped for 12 s (past its session: its partitions move, its open effect transaction waits), then SIGCONT, three times',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq', 'table-log'],
    minWorkloadSeconds: 45,
    wal: CONSUMER_SIDE,
    nemesis: (ctx) => freezeRepeatedly(ctx, ctx.consumers, { times: 3, frozenMs: 12_000, gapMs: [1_500, 3_000] }),
  },
  {
    name: 'kafka-leader-kill',
    summary: 'twice: SIGKILL the node leading a random partition, restart it 8 s later, wait for full ISR',
    needsCluster: true,
    minWorkloadSeconds: 30,
    wal: 'not run in WAL mode yet; kafka-pause covers a Kafka outage for the WAL relay',
    nemesis: async (ctx) => {
      await ctx.pause(3_000);
      await killLeaderAndRestart(ctx, 8_000);
      await ctx.pause(2_000);
      await killLeaderAndRestart(ctx, 6_000);
    },
  },
  {
    name: 'kafka-rolling-restart',
    summary: 'each node in turn stopped cleanly (SIGTERM), restarted 3 s later, full ISR before the next',
    needsCluster: true,
    minWorkloadSeconds: 40,
    wal: 'not run in WAL mode yet; kafka-pause covers a Kafka outage for the WAL relay',
    nemesis: async (ctx) => {
      for (const node of [1, 2, 3]) {
        await ctx.pause(2_000);
        await restartNodeCleanly(ctx, node, 3_000);
      }
    },
  },
  {
    name: 'kafka-pause',
    summary: 'the leader of a random partition SIGSTOPped for 15 s (broker session 4 s, consumer session 6 s), then SIGCONT',
    needsCluster: true,
    minWorkloadSeconds: 25,
    wal: {
      summary: 'the leader of a random partition SIGSTOPped for 20 s (the WAL relay retries in place and buffers), then SIGCONT',
      minWorkloadSeconds: 35,
      nemesis: async (ctx) => {
        await ctx.pause(3_000);
        await pauseLeader(ctx, 20_000);
      },
    },
    nemesis: async (ctx) => {
      await ctx.pause(3_000);
      await pauseLeader(ctx, 15_000);
    },
  },
  {
    name: 'broker-restart',
    summary:
      "the run's own Redis/RabbitMQ broker: stopped cleanly (Redis SHUTDOWN, RabbitMQ stop_app) for 5 s, later SIGKILLed for 4 s, each time started again on the same data",
    needsCluster: false,
    transports: ['redis', 'rabbitmq'],
    minWorkloadSeconds: 25,
    wal: 'Redis Streams and RabbitMQ only; the WAL relay runs on Kafka here',
    nemesis: async (ctx) => {
      await ctx.pause(4_000);
      await restartBroker(ctx, 'clean', 5_000);
      await ctx.pause(6_000);
      await restartBroker(ctx, 'crash', 4_000);
    },
  },
  {
    name: 'transport-faults',
    summary:
      'short version of relay-kill, consumer-kill and broker-restart for `npm test` (1 relay, 2 consumers): two relay and two consumer SIGKILLs around one broker crash restart (SIGKILL, 1.5 s down, started again on its data)',
    needsCluster: false,
    transports: ['redis', 'rabbitmq'],
    // One process fewer of each kind than the long scenarios: starting Node processes is most of the cost
    // on a busy machine, and a kill still moves work (the relay's leased rows, the consumer's partitions).
    processes: { relays: 1, consumers: 2 },
    minWorkloadSeconds: 6,
    wal: 'Redis Streams and RabbitMQ only; the WAL relay runs on Kafka here',
    nemesis: async (ctx) => {
      const kill = async (group: typeof ctx.relays) => {
        const name = pick(ctx.random, group.names);
        await group.killAndRestart(name);
        ctx.event(`SIGKILL ${name}, restarted`);
      };
      await ctx.pause(500);
      await kill(ctx.relays);
      await kill(ctx.consumers);
      await ctx.pause(500);
      // Not stop_app: with live streams and connections it took 16-20 s here, longer than a crash and a
      // cold boot of the node (12-16 s on a busy 2-core machine).
      await restartBroker(ctx, 'crash', 1_500);
      await kill(ctx.consumers);
      await kill(ctx.relays);
    },
  },
  {
    name: 'postgres-restart',
    summary: 'Postgres restarted with -m immediate (crash restart), twice, while enqueuing, relaying and consuming',
    needsCluster: false,
    // On the table log the crash takes the transport down too: its log, offsets and group leases are tables there.
    transports: ['kafka', 'table-log'],
    minWorkloadSeconds: 20,
    wal: {},
    nemesis: async (ctx) => {
      await ctx.pause(4_000);
      await restartPostgres(ctx);
      await ctx.pause(7_000);
      await restartPostgres(ctx);
    },
  },
  {
    name: 'wal-slot-lost',
    summary:
      'the WAL slot dropped under load while the relays run, twice; 6 s later the --create-slot relay is restarted: it creates the slot again and hands every unsent row to the polling path',
    needsCluster: false,
    walOnly: "it drops the WAL relay's slot: run it with --relay-mode wal",
    // The --create-slot relay's restart takes 10-40 s on a loaded machine: long enough a workload that
    // both losses, and the restarts that repair them, meet live traffic.
    minWorkloadSeconds: 90,
    wal: {},
    nemesis: async (ctx) => {
      await ctx.pause(4_000);
      await loseSlot(ctx, 6_000);
      await ctx.pause(6_000);
      await loseSlot(ctx, 6_000);
    },
  },
  {
    name: 'redis-outage',
    summary: "Redis (the consumers' fast path) stopped for 8 s, started empty (flushed); flushed again 4 s later",
    needsCluster: false,
    minWorkloadSeconds: 20,
    wal: CONSUMER_SIDE,
    nemesis: async (ctx) => {
      await ctx.pause(4_000);
      await redisOutage(ctx, 8_000);
      await ctx.pause(4_000);
      await ctx.env.redis.flush();
      ctx.event('redis flushed');
    },
  },
  {
    name: 'network-kafka',
    summary: 'relays/consumers <-> Kafka: all connections cut and refused 6 s; one broker partitioned 10 s; 150 ms delay 8 s',
    needsCluster: true,
    minWorkloadSeconds: 40,
    wal: 'not run in WAL mode yet',
    nemesis: async (ctx) => {
      await ctx.pause(3_000);
      await networkFault(ctx, 'kafka', 'cut', 6_000);
      await ctx.pause(3_000);
      await networkFault(ctx, 'kafka', 'stall', 10_000, { oneBroker: true });
      await ctx.pause(3_000);
      await networkFault(ctx, 'kafka', 'delay', 8_000, { delayMs: 150 });
    },
  },
  {
    name: 'network-postgres',
    summary: 'relays/consumers <-> Postgres: connections cut and refused 5 s; partitioned 8 s; 50 ms delay 8 s',
    needsCluster: false,
    minWorkloadSeconds: 35,
    wal: 'not run in WAL mode yet',
    nemesis: async (ctx) => {
      await ctx.pause(3_000);
      await networkFault(ctx, 'postgres', 'cut', 5_000);
      await ctx.pause(3_000);
      await networkFault(ctx, 'postgres', 'stall', 8_000);
      await ctx.pause(3_000);
      await networkFault(ctx, 'postgres', 'delay', 8_000, { delayMs: 50 });
    },
  },
  {
    name: 'handler-faults',
    summary: '3% of messages fail transiently 1-2 times (then succeed), 0.5% fail permanently (must be exactly the dead letters)',
    needsCluster: false,
    transports: ['kafka', 'redis', 'rabbitmq'],
    minWorkloadSeconds: 10,
    failures: { transient: 0.03, permanent: 0.005, poison: 0 },
    wal: CONSUMER_SIDE,
    nemesis: async () => {},
  },
  {
    name: 'poison',
    summary: 'two poison messages, each killing the consumer that handles it (SIGKILL of its own process), must end as dead letters',
    needsCluster: false,
    minWorkloadSeconds: 15,
    failures: { transient: 0, permanent: 0, poison: 2 },
    wal: CONSUMER_SIDE,
    nemesis: async () => {},
  },
  {
    name: 'mixed',
    summary: 'random faults of every kind above, overlapping (at most one per kind at a time), plus the handler faults',
    needsCluster: true,
    minWorkloadSeconds: 60,
    failures: HANDLER_FAULTS,
    wal: 'its relay faults pick a random relay and it has no slot faults: not adapted to the WAL relay yet',
    nemesis: mixedNemesis,
  },
];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

interface MixedFault {
  /** At most one fault of a kind runs at a time; one Kafka node fault at a time keeps every fault a single node fault. */
  kind: string;
  run(ctx: NemesisContext): Promise<void>;
}

const MIXED_FAULTS: readonly MixedFault[] = [
  { kind: 'relay', run: (ctx) => ctx.relays.killAndRestart(pick(ctx.random, ctx.relays.names)).then(() => ctx.event('SIGKILL a relay')) },
  {
    kind: 'consumer',
    run: (ctx) => ctx.consumers.killAndRestart(pick(ctx.random, ctx.consumers.names)).then(() => ctx.event('SIGKILL a consumer')),
  },
  { kind: 'kafka-node', run: (ctx) => killLeaderAndRestart(ctx, between(ctx.random, 3_000, 8_000)) },
  { kind: 'kafka-node', run: (ctx) => restartNodeCleanly(ctx, 1 + Math.floor(ctx.random() * 3), between(ctx.random, 1_000, 4_000)) },
  { kind: 'kafka-node', run: (ctx) => pauseLeader(ctx, between(ctx.random, 7_000, 12_000)) },
  { kind: 'postgres', run: (ctx) => restartPostgres(ctx) },
  { kind: 'redis', run: (ctx) => redisOutage(ctx, between(ctx.random, 2_000, 8_000)) },
  { kind: 'kafka-net', run: (ctx) => networkFault(ctx, 'kafka', 'cut', between(ctx.random, 2_000, 6_000)) },
  { kind: 'kafka-net', run: (ctx) => networkFault(ctx, 'kafka', 'stall', between(ctx.random, 3_000, 8_000), { oneBroker: true }) },
  {
    kind: 'kafka-net',
    run: (ctx) => networkFault(ctx, 'kafka', 'delay', between(ctx.random, 3_000, 8_000), { delayMs: between(ctx.random, 20, 200) }),
  },
  { kind: 'pg-net', run: (ctx) => networkFault(ctx, 'postgres', 'cut', between(ctx.random, 2_000, 5_000)) },
  { kind: 'pg-net', run: (ctx) => networkFault(ctx, 'postgres', 'stall', between(ctx.random, 2_000, 6_000)) },
  {
    kind: 'pg-net',
    run: (ctx) => networkFault(ctx, 'postgres', 'delay', between(ctx.random, 3_000, 8_000), { delayMs: between(ctx.random, 5, 60) }),
  },
];

/** A new random fault every 2-6 s while the workload runs, each drawn from the kinds not already in progress. */
async function mixedNemesis(ctx: NemesisContext): Promise<void> {
  const busy = new Set<string>();
  const running: Promise<void>[] = [];
  while (ctx.workloadRunning()) {
    await ctx.pause(between(ctx.random, 2_000, 6_000));
    if (!ctx.workloadRunning()) break;
    const free = MIXED_FAULTS.filter((f) => !busy.has(f.kind));
    if (free.length === 0) continue;
    const fault = pick(ctx.random, free);
    busy.add(fault.kind);
    running.push(fault.run(ctx).finally(() => busy.delete(fault.kind)));
  }
  const outcomes = await Promise.allSettled(running);
  const failed = outcomes.find((o) => o.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
