/**
 * A consumer process for crash tests: spawned with `process.execPath`, SIGKILLed and restarted by the
 * test. Configured by environment; reports to the parent over IPC (counts as they happen, so a kill loses
 * at most the last few). Handler 'credit' writes one effect row; handler 'poison' kills its own process.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_TOPIC, ZL_GROUP, ZL_KAFKA_BROKERS   where to work
 *   ZL_WORKER               name (and static group instance id when ZL_STATIC=1)
 *   ZL_REDIS_URL            optional Redis fast path
 *   ZL_MAX_STARTS           poison threshold (default 3)
 *   ZL_CONCURRENCY          handlers at once (default 16)
 */
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { RedisInboxCache } from '../../src/adapters/redis/redis-inbox-cache.ts';
import { testConsumer } from './test-consumer.ts';

export type WorkerMessage =
  | { kind: 'started'; worker: string }
  | { kind: 'counts'; worker: string; processed: number; duplicates: number; deadLettered: number }
  | { kind: 'error'; worker: string; message: string };

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`consumer-worker: ${name} is not set`);
  return value;
};

const worker = env('ZL_WORKER');
const schema = env('ZL_SCHEMA');
const send = (message: WorkerMessage) => process.send?.(message);

const db = pgDatabase({ connectionString: env('ZL_PG_URL'), max: 20, onError: () => {} });
const brokers = env('ZL_KAFKA_BROKERS').split(',');
const publisher = new KafkaPublisher({ brokers, clientId: `zl-worker-${worker}` });
const cache = process.env.ZL_REDIS_URL ? new RedisInboxCache({ url: process.env.ZL_REDIS_URL, prefix: `zl-${schema}` }) : undefined;
const consumer = testConsumer({
  subscriber: new KafkaSubscriber({
    brokers,
    clientId: `zl-worker-${worker}`,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 20_000,
    maxWaitMs: 100,
    ...(process.env.ZL_STATIC === '1' ? { groupInstanceId: worker } : {}),
  }),
  db,
  publisher,
  cache,
  schema,
  config: {
    groupId: env('ZL_GROUP'),
    topics: [env('ZL_TOPIC')],
    concurrency: Number(process.env.ZL_CONCURRENCY ?? 16),
    commitIntervalMs: 100,
    revokeTimeoutMs: 10_000,
    poison: { maxStarts: Number(process.env.ZL_MAX_STARTS ?? 3) },
  },
});

let processed = 0;
let duplicates = 0;
let deadLettered = 0;
consumer.on('processed', (e) => {
  if (e.outcome === 'processed') processed++;
  else duplicates++;
});
consumer.on('dead-letter', () => deadLettered++);
consumer.on('error', (e) => send({ kind: 'error', worker, message: e.message }));
const flush = setInterval(() => {
  if (processed + duplicates + deadLettered === 0) return;
  send({ kind: 'counts', worker, processed, duplicates, deadLettered });
  processed = 0;
  duplicates = 0;
  deadLettered = 0;
}, 50);

consumer.handle<{ n: number }>('credit', async (m, ctx) => {
  await ctx.tx.query(`insert into "${schema}".effect (message_id, msg_key, n, type) values ($1, $2, $3, $4)`, [
    m.id,
    m.key,
    m.payload.n,
    m.type,
  ]);
});
consumer.handle('poison', async () => {
  // What a segfaulting native module or an out-of-memory kill looks like from outside.
  process.kill(process.pid, 'SIGKILL');
});

process.on('SIGTERM', async () => {
  clearInterval(flush);
  await consumer.stop();
  await publisher.close();
  await cache?.close();
  await db.close();
  process.exit(0);
});

await consumer.start();
send({ kind: 'started', worker });
