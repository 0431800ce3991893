/**
 * One consumer process of the fault suite: the real Consumer runtime (inbox in the effect transaction,
 * key lanes, ordered commits, blocking retries, dead letters, poison guard, Redis fast path) on a real
 * consumer group on Kafka, Redis Streams or RabbitMQ. The harness starts several, SIGKILLs and restarts
 * them. Configured by environment; reports to the harness over IPC.
 *
 *   ZL_FX_WORKER      name of this worker
 *   ZL_FX_PG_URL      Postgres (through the suite's proxy), ZL_FX_SCHEMA the schema
 *   ZL_FX_TRANSPORT   kafka (default), redis or rabbitmq
 *   ZL_FX_BROKERS     Kafka bootstrap (through the suite's proxies), or the redis:// / amqp:// URL
 *   ZL_FX_TOPIC, ZL_FX_GROUP
 *   ZL_FX_REDIS_URL   Redis for the inbox fast path (optional)
 *   ZL_FX_OFFSETS     broker (default) or database: where the group's offsets live (P10)
 *   ZL_FX_BREAK       test-only broken handler, see `effect-outside-transaction` below; unset normally
 *
 * The handler of 'fx.order' is the business effect: it adds to the key's account row and appends the
 * message to fx_effect_log, which has no unique key, so an effect applied twice shows as two log rows.
 * The payload says how the message should misbehave: `fail: 'transient'` throws a RetryableError on its
 * first `times` attempts, `fail: 'permanent'` throws a PermanentError (it must end as a dead letter),
 * `fail: 'poison'` kills this process every time it is handled (it must end as a dead letter too).
 */
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';
import { PostgresDeadLetterStore } from '../src/adapters/postgres/postgres-dead-letter-store.ts';
import { PostgresInboxStore } from '../src/adapters/postgres/postgres-inbox-store.ts';
import { rabbitmq } from '../src/adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../src/adapters/redis-streams/redis-streams-transport.ts';
import { RedisInboxCache } from '../src/adapters/redis/redis-inbox-cache.ts';
import { Consumer } from '../src/consumer/consumer.ts';
import { PermanentError, RetryableError } from '../src/core/errors.ts';
import type { SqlExecutor } from '../src/ports/sql-executor.ts';
import type { Publisher, Subscriber } from '../src/ports/transport.ts';
import { applyFxEffect, FX_TYPE, type FxPayload } from './workload.ts';
import { commitsOnHandover } from './commit-on-handover.ts';
import { OffsetsOutsideTransactionInbox } from './db-offsets-outside-transaction.ts';

export type WorkerReport = { kind: 'started'; worker: string } | { kind: 'error'; worker: string; message: string };

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`consumer-worker: ${name} is not set`);
  return value;
};

const worker = env('ZL_FX_WORKER');
const schema = env('ZL_FX_SCHEMA');
const transportKind = process.env.ZL_FX_TRANSPORT || 'kafka';
const brokers = env('ZL_FX_BROKERS');
const redisUrl = process.env.ZL_FX_REDIS_URL;
/**
 * TEST-ONLY broken build of the handler, read once here. `effect-outside-transaction` writes the effect
 * through a connection of its own (autocommit) instead of `ctx.tx`, before it may fail: the mistake the
 * inbox-in-the-same-transaction rule (C4) exists to prevent. The checker must then see effects applied
 * twice. Never set outside the fault suite's own checks.
 */
const broken = process.env.ZL_FX_BREAK === 'effect-outside-transaction';
/** TEST-ONLY: the subscriber commits offsets as it hands records over (faults/commit-on-handover.ts). */
const commitOnHandover = process.env.ZL_FX_BREAK === 'log-offsets-before-effect';
/** TEST-ONLY: database offsets written outside the effect transaction (faults/db-offsets-outside-transaction.ts). */
const offsetsOutside = process.env.ZL_FX_BREAK === 'db-offsets-outside-transaction';

const report = (message: WorkerReport) => process.send?.(message);
let errorsReported = 0;
const reportError = (error: Error) => {
  // A fault makes every connection fail at once; a few samples say enough.
  if (errorsReported++ < 20) report({ kind: 'error', worker, message: error.message });
};

/**
 * The group's transport, with short sessions so a killed member's partitions move in seconds. Redis
 * Streams and RabbitMQ use the timings of the demo (src/demo/demo-role.ts); the publisher copies dead
 * letters to <topic>.dlq.
 */
async function transport(): Promise<{ subscriber: Subscriber; publisher: Publisher; close(): Promise<void> }> {
  const clientId = `zl-fx-${worker}`;
  const ownGroup = { clientId, heartbeatIntervalMs: 250, sessionTimeoutMs: 2_000, rebalanceTimeoutMs: 10_000 };
  if (transportKind === 'redis') {
    return redisStreams(brokers, { publisher: { commandTimeoutMs: 5_000 }, subscriber: { ...ownGroup, pollIntervalMs: 250 } });
  }
  if (transportKind === 'rabbitmq') return rabbitmq(brokers, { publisher: { deliveryTimeoutMs: 5_000 }, subscriber: ownGroup });
  if (transportKind === 'table-log') {
    // The log lives in the scenario's schema, next to the inbox: one database, one connection pool.
    const { tableLog } = await import('../src/adapters/table-log/table-log-transport.ts');
    const log = tableLog({ db, schema }, { subscriber: { ...ownGroup, pollIntervalMs: 250 } });
    return {
      subscriber: commitOnHandover ? commitsOnHandover(log.subscriber) : log.subscriber,
      publisher: log.publisher,
      close: () => log.close(),
    };
  }
  // Loaded only for Kafka runs: the Kafka client takes seconds to load on a busy machine, paid at every restart.
  const { KafkaPublisher } = await import('../src/adapters/kafka/kafka-publisher.ts');
  const { KafkaSubscriber } = await import('../src/adapters/kafka/kafka-subscriber.ts');
  const publisher = new KafkaPublisher({ brokers: brokers.split(','), clientId, deliveryTimeoutMs: 5_000, requestTimeoutMs: 4_000 });
  const subscriber = new KafkaSubscriber({
    brokers: brokers.split(','),
    clientId,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 20_000,
    maxWaitMs: 100,
  });
  return { subscriber, publisher, close: () => publisher.close() };
}

const db = pgDatabase({ connectionString: env('ZL_FX_PG_URL'), max: 12, onError: () => {} });
const broker = await transport();
const cache = redisUrl ? new RedisInboxCache({ url: redisUrl, prefix: `zl-${schema}`, commandTimeoutMs: 100 }) : undefined;
const consumer = new Consumer({
  subscriber: broker.subscriber,
  db,
  inbox: offsetsOutside ? new OffsetsOutsideTransactionInbox(db, { schema }) : new PostgresInboxStore(db, { schema }),
  deadLetters: new PostgresDeadLetterStore(db, { schema }),
  publisher: broker.publisher,
  cache,
  config: {
    groupId: env('ZL_FX_GROUP'),
    topics: [env('ZL_FX_TOPIC')],
    concurrency: 16,
    commitIntervalMs: 100,
    revokeTimeoutMs: 10_000,
    stopTimeoutMs: 10_000,
    poison: { maxStarts: 3 },
    // Blocking retries keep per-key order; short delays keep the suite fast.
    retry: { maxRetries: 3, delayMs: 100, mode: 'blocking' },
    unavailableBackoff: { baseMs: 50, maxMs: 1_000 },
    lagIntervalMs: 0,
    offsetStore: process.env.ZL_FX_OFFSETS === 'database' ? 'database' : 'broker',
  },
});
consumer.on('error', reportError);

function applyEffect(tx: SqlExecutor, m: { id: string; key: string; seq: number }): Promise<void> {
  return applyFxEffect(tx, schema, m, worker);
}

consumer.handle<FxPayload>(FX_TYPE, async (m, ctx) => {
  if (m.payload.fail === 'poison') {
    // What a segfaulting native module or an out-of-memory kill looks like from outside.
    process.kill(process.pid, 'SIGKILL');
  }
  if (broken) await db.transaction((own) => applyEffect(own, m));
  if (m.payload.fail === 'permanent') throw new PermanentError(`order ${m.id} can never be fulfilled`);
  if (m.payload.fail === 'transient' && ctx.attempt <= (m.payload.times ?? 1)) {
    throw new RetryableError(`order ${m.id}: downstream busy (attempt ${ctx.attempt})`);
  }
  if (!broken) await applyEffect(ctx.tx, m);
});

let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  await consumer.stop().catch(() => {});
  await broker.close().catch(() => {});
  await cache?.close().catch(() => {});
  await db.close().catch(() => {});
  process.exit(0);
});
// The harness going away must not leave consumers behind.
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

await consumer.start();
report({ kind: 'started', worker });
