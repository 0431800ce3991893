/**
 * A consumer process for the crash-recovery tests (recovery-after-crash.test.ts): SIGKILLed by the test
 * in its first life, started again for a second. Reports its events to the parent over IPC.
 *
 *   ZL_PG_URL, ZL_SCHEMA, ZL_TOPIC, ZL_GROUP, ZL_KAFKA_BROKERS, ZL_WORKER   where to work
 *   ZL_LIFE           '1': 'flaky' fails (retryable) and 'block' hangs; '2': both apply their effect
 *   ZL_BLOCK_FAILS    '1': in life 2, 'block' writes its effect and then fails (retryable) every time
 *   ZL_MAX_STARTS     poison threshold
 *   ZL_RETRY_DELAY_MS delay between retries
 *   ZL_CREDIT_MS      how long 'credit' waits before writing its effect (default 0)
 *   ZL_MAX_RETRIES    the retry policy's maxRetries (default 3)
 *   ZL_DL_HANGS       '1': recording a dead letter never returns (the process is killed before it commits)
 */
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { PostgresDeadLetterStore } from '../../../src/adapters/postgres/postgres-dead-letter-store.ts';
import { RetryableError } from '../../../src/core/errors.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

export type RecoveryMessage =
  | { kind: 'started' }
  | { kind: 'blocking'; messageId: string }
  | { kind: 'retry'; messageId: string }
  | { kind: 'attempt'; messageId: string; attempt: number }
  | { kind: 'suspect'; messageId: string; crashes: number }
  | { kind: 'dead-lettering'; messageId: string }
  | { kind: 'error'; message: string };

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`recovery-worker: ${name} is not set`);
  return value;
};

const schema = env('ZL_SCHEMA');
const life = env('ZL_LIFE');
const send = (message: RecoveryMessage) => process.send?.(message);
const db = pgDatabase({ connectionString: env('ZL_PG_URL'), max: 10, onError: () => {} });
const worker = env('ZL_WORKER');
const deadLetters = new PostgresDeadLetterStore(db, { schema });
if (process.env.ZL_DL_HANGS === '1') {
  // The dead letter's row never commits in this life: the kill comes between the last failed attempt and it.
  deadLetters.record = (input) => {
    send({ kind: 'dead-lettering', messageId: input.messageId ?? '' });
    return new Promise(() => {});
  };
}
const consumer = testConsumer({
  deadLetters,
  subscriber: new KafkaSubscriber({
    brokers: env('ZL_KAFKA_BROKERS').split(','),
    clientId: `zl-recovery-${worker}`,
    groupInstanceId: worker,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 20_000,
    maxWaitMs: 100,
  }),
  db,
  schema,
  config: {
    groupId: env('ZL_GROUP'),
    topics: [env('ZL_TOPIC')],
    concurrency: 8,
    commitIntervalMs: 100,
    retry: { delayMs: Number(env('ZL_RETRY_DELAY_MS')), maxRetries: Number(process.env.ZL_MAX_RETRIES ?? 3) },
    poison: { maxStarts: Number(env('ZL_MAX_STARTS')) },
    lagIntervalMs: 0,
  },
});

const effect = (tx: SqlExecutor, m: { id: string; key: string; type: string; payload: { n: number } }) =>
  tx.query(`insert into "${schema}".effect (message_id, msg_key, n, type) values ($1, $2, $3, $4)`, [m.id, m.key, m.payload.n, m.type]);

const creditMs = Number(process.env.ZL_CREDIT_MS ?? 0);
consumer.handle<{ n: number }>('credit', async (m, ctx) => {
  if (creditMs > 0) await new Promise((resolve) => setTimeout(resolve, creditMs));
  await effect(ctx.tx, m);
});
consumer.handle<{ n: number }>('flaky', async (m, ctx) => {
  send({ kind: 'attempt', messageId: m.id, attempt: ctx.attempt });
  await effect(ctx.tx, m);
  if (life === '1') throw new RetryableError('downstream is failing');
});
consumer.handle<{ n: number }>('block', async (m, ctx) => {
  if (life === '1') {
    send({ kind: 'blocking', messageId: m.id });
    await new Promise(() => {});
  }
  await effect(ctx.tx, m);
  if (process.env.ZL_BLOCK_FAILS === '1') throw new RetryableError('still failing after the restart');
});
consumer.on('retry', (e) => send({ kind: 'retry', messageId: e.messageId }));
consumer.on('poison-suspect', (e) => send({ kind: 'suspect', messageId: e.messageId ?? '', crashes: e.crashes }));
consumer.on('error', (e) => send({ kind: 'error', message: e.message }));

process.on('SIGTERM', async () => {
  await consumer.stop();
  await db.close();
  process.exit(0);
});

await consumer.start();
send({ kind: 'started' });
