import { randomBytes } from 'node:crypto';
import { KafkaPublisher } from '../adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../adapters/kafka/kafka-subscriber.ts';
import { PostgresDeadLetterStore } from '../adapters/postgres/postgres-dead-letter-store.ts';
import { PostgresInboxStore } from '../adapters/postgres/postgres-inbox-store.ts';
import { TableLogPublisher } from '../adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../adapters/table-log/table-log-subscriber.ts';
import { Consumer } from '../consumer/consumer.ts';
import { Relay } from '../outbox/relay.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { Publisher, Subscriber } from '../ports/transport.ts';
import { type ScenarioContext, type ScenarioName, scenarios } from './scenarios.ts';

export type TransportSpec = { kind: 'table-log' } | { kind: 'kafka'; brokers: string[] };

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

export async function startRole(config: RoleConfig, db: Database, report: (event: RoleEvent) => void): Promise<RunningRole> {
  const scenario = scenarios[config.scenario];
  const { ctx, transport } = config;
  const clientId = `zl-demo-${config.runId}-${config.name}`;
  const publisher: Publisher =
    transport.kind === 'kafka'
      ? new KafkaPublisher({ brokers: transport.brokers, clientId, deliveryTimeoutMs: 3_000 })
      : new TableLogPublisher(db, { schema: ctx.schema });

  if (config.role === 'relay') {
    const relay = new Relay({
      sources: scenario.relaySource(db, ctx),
      publisher,
      db,
      config: {
        instanceId: `${config.name}-${randomBytes(3).toString('hex')}`,
        batchSize: 200,
        // A killed relay's claims come back after the lease; it must outlast one send (3 s on Kafka).
        leaseMs: transport.kind === 'kafka' ? 6_000 : 2_000,
        backoff: { baseMs: 100, maxMs: 1_000, jitter: 0.5 },
        idleIntervalMs: 1_000,
        backlogIntervalMs: 500,
      },
    });
    relay.on('error', (e) => report({ kind: 'error', message: `relay: ${e.message}` }));
    relay.on('parked', (e) => report({ kind: 'error', message: `relay parked ${e.messageIds.length} message(s)` }));
    await relay.start();
    return {
      async stop() {
        await relay.stop();
        await publisher.close();
      },
    };
  }

  const subscriber: Subscriber =
    transport.kind === 'kafka'
      ? new KafkaSubscriber({ brokers: transport.brokers, clientId, groupInstanceId: clientId, ...KAFKA_GROUP })
      : new TableLogSubscriber(db, { schema: ctx.schema, clientId, ...TABLE_LOG_GROUP });
  const consumer = new Consumer({
    subscriber,
    db,
    inbox: new PostgresInboxStore(db, { schema: ctx.schema }),
    deadLetters: new PostgresDeadLetterStore(db, { schema: ctx.schema }),
    // Dead letters are also copied to <topic>.dlq.
    publisher,
    config: {
      groupId: ctx.groupId,
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
      gapDetection: config.scenario === 'points',
    },
  });
  scenario.register(consumer, ctx);
  consumer.on('processed', (e) => report({ kind: 'processed', type: e.type, duplicate: e.outcome === 'duplicate' }));
  consumer.on('retry', (e) => report({ kind: 'retry', type: e.type }));
  consumer.on('dead-letter', (e) => report({ kind: 'dead-letter', type: e.type ?? '', recorded: e.recorded }));
  consumer.on('error', (e) => report({ kind: 'error', message: `${config.name}: ${e.message}` }));
  await consumer.start();
  return {
    async stop() {
      await consumer.stop();
      await publisher.close();
    },
  };
}
