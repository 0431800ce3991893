import { randomUUID } from 'node:crypto';
import {
  DatabaseSetup,
  getDefaultLogger,
  getDisabledLogger,
  initializeMessageStorage,
  initializePollingMessageListener,
  type PollingListenerConfig,
  type TransactionalMessage,
} from 'pg-transactional-outbox';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';

import type { OutgoingRecord } from '../src/core/envelope.ts';
import type { Producer } from '@platformatic/kafka';
import {
  type BenchEnv,
  benchSchema,
  createTopic,
  deleteTopics,
  keyOf,
  orderPayload,
  pool,
  rawProducer,
  uniqueTopic,
  zeroRecord,
} from './lib/env.ts';
import { interleaved, type Reps, type RunResult, rssSampler, until } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { drainWithRelay, fillOutbox } from './relay.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

/**
 * pg-transactional-outbox hands its publisher one message per call, each in its own transaction. So that
 * Kafka sees the same batching as the relay's, calls made in the same tick go out as one produce request
 * (the best case for the peer); a call returns when the broker acknowledged its batch.
 */
class CoalescingSender {
  readonly #producer: Producer<string, Buffer, string, string>;
  #queue: Array<{ record: OutgoingRecord; resolve: () => void; reject: (e: unknown) => void }> = [];
  #scheduled = false;

  constructor(producer: Producer<string, Buffer, string, string>) {
    this.#producer = producer;
  }

  send(record: OutgoingRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    try {
      await this.#producer.send({
        messages: batch.map(({ record: r }) => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })),
      });
      for (const b of batch) b.resolve();
    } catch (error) {
      for (const b of batch) b.reject(error);
    }
  }
}

/** The peer's tables and polling function in a schema of their own (its DROP INDEX lines are unqualified, so skipped). */
async function setupPeer(query: (sql: string) => Promise<unknown>, schema: string): Promise<void> {
  // Roles and grants are not used: the benchmark connects as one user.
  const names = {
    schema,
    table: 'outbox',
    outboxOrInbox: 'outbox' as const,
    database: 'test',
    listenerRole: 'postgres',
    nextMessagesName: 'next_outbox_messages',
  };
  await query(DatabaseSetup.dropAndCreateTable(names));
  await query(DatabaseSetup.createPollingFunction(names));
  const indexes = DatabaseSetup.setupPollingIndexes(names)
    .split('\n')
    .filter((line) => line.trim().length > 0 && !line.startsWith('DROP INDEX'));
  for (const statement of indexes) await query(statement);
}

export async function peerBench(env: BenchEnv, messages: number, reps: Reps, keys = 100): Promise<BenchResult> {
  const s = await benchSchema(env, 'zlb_peer', 20);
  const peerSchema = `${s.schema}_peer`;
  await setupPeer((sql) => s.pool.query(sql), peerSchema);
  const topic = uniqueTopic('zlb-peer');
  await createTopic(env, topic, 6);
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  const publisher = new KafkaPublisher({ brokers: env.brokers, clientId: 'zl-bench-peer-relay' });
  const producer = rawProducer(env, 'zl-bench-peer');
  const sender = new CoalescingSender(producer);
  const config: PollingListenerConfig = {
    outboxOrInbox: 'outbox',
    dbListenerConfig: { connectionString: env.pgUrl },
    // The same pool size the relay's database gets.
    dbHandlerConfig: { connectionString: env.pgUrl, max: 10 } as PollingListenerConfig['dbListenerConfig'],
    settings: {
      dbSchema: peerSchema,
      dbTable: 'outbox',
      nextMessagesFunctionSchema: peerSchema,
      nextMessagesFunctionName: 'next_outbox_messages',
      // Messages in flight at once, each in its own transaction: the handler pool size (the library default is 5;
      // its batch-size strategy starts with this many one-message polls, so a large value only slows the start).
      nextMessagesBatchSize: 10,
      // The library defaults. Its poll function briefly locks in-flight rows (NOWAIT), so a handler that
      // collides with a poll fails its own NOWAIT lock and the message comes back after this lock time;
      // polling more often than the default makes that collision, and the run, much slower.
      nextMessagesLockInMs: 5_000,
      nextMessagesPollingIntervalInMs: 500,
      enableMaxAttemptsProtection: false,
      enablePoisonousMessageProtection: false,
      messageCleanupIntervalInMs: 0,
    },
  };
  const logger = process.env.ZLB_PEER_LOG ? getDefaultLogger('peer') : getDisabledLogger();
  const store = initializeMessageStorage(config, logger);
  let offset = 0;

  const peer = async (): Promise<RunResult> => {
    const base = offset;
    offset += messages;
    // Filled as the relay's outbox is: 8 concurrent transactions of 10 messages; a key is a segment, sent in order.
    await pool(Math.ceil(messages / 10), 8, async (t) => {
      const client = await s.pool.connect();
      try {
        await client.query('begin');
        for (let j = t * 10; j < Math.min(messages, (t + 1) * 10); j++) {
          const i = base + j;
          const key = keyOf(i, keys);
          const message: TransactionalMessage = {
            id: randomUUID(),
            aggregateType: 'customer',
            aggregateId: key,
            messageType: 'order.placed',
            payload: orderPayload(i, key),
            segment: key,
            concurrency: 'sequential',
            createdAt: new Date().toISOString(),
          };
          await store(message, client);
        }
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw error;
      } finally {
        client.release();
      }
    });
    const latenciesMs: number[] = [];
    let handled = 0;
    const rss = rssSampler();
    const t0 = performance.now();
    const [shutdown] = initializePollingMessageListener(
      config,
      {
        handle: async (message: TransactionalMessage) => {
          const started = performance.now();
          const record = zeroRecord(topic, 0, 1);
          record.key = message.aggregateId;
          record.value = Buffer.from(JSON.stringify(message.payload), 'utf8');
          await sender.send(record);
          latenciesMs.push(performance.now() - started);
          handled++;
        },
      },
      logger,
    );
    try {
      await until(() => handled >= messages, 'pg-transactional-outbox to hand over every message', 300_000, 10);
      // Done when the peer has recorded every message as processed, as the relay's run ends at markSent.
      await until(
        async () =>
          (await s.pool.query(`select count(*)::int as n from "${peerSchema}".outbox where processed_at is null`)).rows[0].n === 0,
        'pg-transactional-outbox to mark every message processed',
        120_000,
        20,
      );
      return { messages, seconds: (performance.now() - t0) / 1000, latenciesMs, rssMb: rss.stop() };
    } finally {
      await shutdown();
    }
  };

  try {
    const { a, b } = await interleaved(
      reps,
      async () => {
        await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic, messages, keys });
        return drainWithRelay({ db: s.db, schema: s.schema, publishers: [publisher], messages });
      },
      peer,
      env.log,
    );
    return makeResult({
      name: 'peer',
      messages,
      zeroloss: a,
      baseline: b,
      baselineName: 'pg-transactional-outbox 0.5.7 polling listener (segment = key, sequential), same outbox workload to Kafka',
      latencyOf: 'zeroloss: batch claim to sent recorded; peer: one message handed to Kafka (its handler call)',
      reps: reps.reps,
      notes:
        'ratio = zeroloss relay / pg-transactional-outbox; the peer publishes one message per handler call, coalesced per tick into one produce request',
    });
  } finally {
    await publisher.close().catch(() => {});
    await producer.close(true).catch(() => {});
    await deleteTopics(env, [topic]);
    await s.pool.query(`drop schema if exists "${peerSchema}" cascade`).catch(() => {});
    await s.drop();
  }
}
