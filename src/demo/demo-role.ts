import { randomBytes } from 'node:crypto';
import { kafka } from '../adapters/kafka/kafka-transport.ts';
import { rabbitmq } from '../adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../adapters/redis-streams/redis-streams-transport.ts';
import { tableLog } from '../adapters/table-log/table-log-transport.ts';
import { createConsumer } from '../entry/create-consumer.ts';
import { createRelay } from '../outbox/create-relay.ts';
import type { PostgresStore as Store } from '../adapters/postgres/postgres-store.ts';
import type { Transport } from '../ports/backends.ts';
import { type ScenarioContext, type ScenarioName, scenarios } from './scenarios.ts';

export type TransportSpec =
  | { kind: 'table-log' }
  | { kind: 'kafka'; brokers: string[] }
  /** `prefix` is fresh per run: the run's streams, leases and group keys live under it alone. */
  | { kind: 'redis-streams'; url: string; prefix: string }
  | { kind: 'rabbitmq'; url: string };

/** Everything a relay or consumer instance of the demo needs; plain data, so it crosses to a thread or process. */
export interface RoleConfig {
  role: 'relay' | 'consumer';
  /** Instance name (`relay`, `consumer-1`): also its static group member id on Kafka. */
  name: string;
  scenario: ScenarioName;
  ctx: ScenarioContext;
  transport: TransportSpec;
  /** Makes client ids and static member ids unique to one demo run on a shared broker. */
  runId: string;
  /** The consumer's default delay between retries (the source's is 2 s). */
  retryDelayMs: number;
}

/** What an instance tells the demo, as it happens. */
export type RoleEvent =
  | { kind: 'ready' }
  | { kind: 'stopped' }
  | { kind: 'processed'; type: string; duplicate: boolean }
  | { kind: 'retry'; type: string }
  | { kind: 'dead-letter'; type: string; recorded: boolean }
  /** A record whose handler was running when an instance died, now rerun alone (poison-guard.ts). */
  | { kind: 'poison-suspect' }
  /** Partitions this instance gained or gave up (a rebalance after a kill or a restart). */
  | { kind: 'assigned' | 'revoked'; partitions: number[] }
  | { kind: 'error'; message: string };

export interface RunningRole {
  /** The graceful path (end of the demo): finish in-flight work, commit, leave. Kills never call it. */
  stop(): Promise<void>;
}

/**
 * Timings of the demo: short leases and sessions so that a killed instance's work comes back within
 * seconds. Production defaults are minutes (relay lease) and tens of seconds (group sessions).
 */
const TABLE_LOG_GROUP = { heartbeatIntervalMs: 250, sessionTimeoutMs: 2_000, pollIntervalMs: 250, rebalanceTimeoutMs: 5_000 };
const KAFKA_GROUP = { sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, rebalanceTimeoutMs: 10_000, maxWaitMs: 100 };
const OWN_GROUP = { heartbeatIntervalMs: 250, sessionTimeoutMs: 2_000, rebalanceTimeoutMs: 5_000 };

/** A relay or consumer instance's own transport bundle, with the demo's short timings. */
function instanceTransport(spec: TransportSpec, store: Store, clientId: string): Transport {
  switch (spec.kind) {
    case 'kafka':
      return kafka({
        brokers: spec.brokers,
        publisher: { clientId, deliveryTimeoutMs: 3_000 },
        subscriber: { clientId, groupInstanceId: clientId, ...KAFKA_GROUP },
      });
    case 'redis-streams':
      return redisStreams(spec.url, {
        prefix: spec.prefix,
        publisher: { commandTimeoutMs: 3_000 },
        subscriber: { clientId, pollIntervalMs: 250, ...OWN_GROUP },
      });
    case 'rabbitmq':
      return rabbitmq(spec.url, { publisher: { deliveryTimeoutMs: 3_000 }, subscriber: { clientId, ...OWN_GROUP } });
    case 'table-log':
      return tableLog(store, { subscriber: { clientId, ...TABLE_LOG_GROUP } });
  }
}

export async function startRole(config: RoleConfig, store: Store, report: (event: RoleEvent) => void): Promise<RunningRole> {
  const scenario = scenarios[config.scenario];
  const { ctx } = config;
  const clientId = `zl-demo-${config.runId}-${config.name}`;
  const transport = instanceTransport(config.transport, store, clientId);

  if (config.role === 'relay') {
    const relay = createRelay({
      store,
      transport,
      sources: [scenario.relaySource(store, ctx)],
      instanceId: `${config.name}-${randomBytes(3).toString('hex')}`,
      batchSize: 200,
      // A killed relay's claims come back after the lease; it must outlast one send (3 s on a broker).
      leaseMs: config.transport.kind === 'table-log' ? 2_000 : 6_000,
      backoff: { baseMs: 100, maxMs: 1_000, jitter: 0.5 },
      idleIntervalMs: 1_000,
      backlogIntervalMs: 500,
    });
    relay.on('error', (e) => report({ kind: 'error', message: `relay: ${e.message}` }));
    relay.on('parked', (e) => report({ kind: 'error', message: `relay parked ${e.messageIds.length} message(s)` }));
    await relay.start();
    return {
      async stop() {
        await relay.stop();
        await transport.close();
      },
    };
  }

  // One consumer per group (orders: inventory, budget and points each read in their own group), all on
  // this instance's transport, so a kill takes all of them down at once.
  const consumers = (scenario.groups ?? [ctx.groupId]).map((groupId) => {
    // The transport's publisher also copies dead letters to <topic>.dlq.
    const consumer = createConsumer({
      store,
      transport,
      groupId,
      topics: [ctx.topic],
      concurrency: 16,
      // The retry counts stay the source's (default 3, per type in the example); only the delay is the demo's.
      retry: { delayMs: config.retryDelayMs },
      commitIntervalMs: 200,
      revokeTimeoutMs: 3_000,
      stopTimeoutMs: 5_000,
      lagIntervalMs: 0,
      // Kills are the demo's, not the messages': a message in flight at several kills in a row is not poison.
      poison: { maxStarts: 20 },
      inbox: { cleanupIntervalMs: 0 },
      // The state-column source does not number messages per key; the outbox does.
      gapDetection: config.scenario !== 'lottery',
    });
    scenario.register(consumer, ctx, groupId);
    consumer.on('processed', (e) => report({ kind: 'processed', type: e.type, duplicate: e.outcome === 'duplicate' }));
    consumer.on('retry', (e) => report({ kind: 'retry', type: e.type }));
    consumer.on('dead-letter', (e) => report({ kind: 'dead-letter', type: e.type ?? '', recorded: e.recorded }));
    consumer.on('poison-suspect', () => report({ kind: 'poison-suspect' }));
    consumer.on('assigned', (p) => report({ kind: 'assigned', partitions: p.map((x) => x.partition) }));
    consumer.on('revoked', (p) => report({ kind: 'revoked', partitions: p.map((x) => x.partition) }));
    consumer.on('error', (e) => report({ kind: 'error', message: `${config.name}: ${e.message}` }));
    return consumer;
  });
  await Promise.all(consumers.map((c) => c.start()));
  return {
    async stop() {
      await Promise.all(consumers.map((c) => c.stop()));
      await transport.close();
    },
  };
}
