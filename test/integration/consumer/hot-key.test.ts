import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { RetryableError } from '../../../src/core/errors.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/**
 * Issue 18, item 1: one hot key's consecutive messages share effect transactions (group commit along a
 * key), handlers in key order. Each test sends one key's 500 messages and checks they are applied in
 * order, each once: with failures inside same-key batches, with the consumer process killed mid-batch,
 * and with a second consumer joining.
 */
const MESSAGES = 500;
const WORKER = path.join(import.meta.dirname, 'recovery-worker.ts');

describe('one hot key: group commit along the key', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;

  before(async () => {
    env = await freshSchema('zlh');
    await createEffectTable(env.db, env.schema);
  });

  after(async () => {
    await env?.cleanup();
  });

  async function send(topic: string, key: string): Promise<OutgoingRecord[]> {
    await createTopics(topicFamily(topic), 2);
    const records = Array.from({ length: MESSAGES }, (_, i) => zlRecord({ topic, key, type: 'credit', payload: { n: i + 1 } }));
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    for (const outcome of await publisher.publish(records)) assert.ok(outcome.ok);
    await publisher.close();
    return records;
  }

  async function applied(key: string): Promise<number[]> {
    const { rows } = await env.pool.query(`select n from "${env.schema}".effect where msg_key = $1 order by id`, [key]);
    return rows.map((r: { n: number }) => r.n);
  }

  async function assertInOrderOnce(key: string): Promise<void> {
    await waitFor(async () => new Set(await applied(key)).size === MESSAGES, {
      what: `the ${MESSAGES} messages of ${key}`,
      timeoutMs: 90_000,
      intervalMs: 200,
    });
    assert.deepEqual(
      await applied(key),
      Array.from({ length: MESSAGES }, (_, i) => i + 1),
      'each message applied once, in key order',
    );
  }

  function consumer(topic: string, groupId: string, clientId: string): Consumer {
    return testConsumer({
      subscriber: new KafkaSubscriber({ brokers: BROKERS, clientId, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 300, maxWaitMs: 100 }),
      db: env.db,
      schema: env.schema,
      config: { groupId, topics: [topic], commitIntervalMs: 100, retry: { delayMs: 20 }, lagIntervalMs: 0 },
    });
  }

  test('a failure in the middle of a same-key batch: the key goes on from the failed message, in order, each once', async () => {
    const topic = uniqueId('zl-hot');
    const key = uniqueId('hot');
    const failing = new Set([100, 250, 400]);
    const txs: Array<{ n: number; attempt: number; tx: SqlExecutor }> = [];
    const sizes: number[] = [];
    const c = consumer(topic, uniqueId('g'), 'hot-a');
    c.handle<{ n: number }>('credit', async (m, ctx) => {
      txs.push({ n: m.payload.n, attempt: ctx.attempt, tx: ctx.tx });
      // The effect is written first: the failure must roll it back with the rest of the shared transaction.
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
      if (failing.has(m.payload.n) && ctx.attempt === 1) throw new RetryableError('downstream hiccup');
    });
    await send(topic, key);
    await c.start();
    try {
      await assertInOrderOnce(key);
      for (const metric of await c.registry.getMetricsAsJSON()) {
        if (metric.name !== 'zeroloss_consumer_transaction_messages') continue;
        for (const v of metric.values as Array<{ value: number; metricName?: string }>) {
          if (v.metricName?.endsWith('_count')) sizes.push(v.value);
        }
      }
    } finally {
      await c.stop();
    }
    const transactions = sizes.reduce((a, b) => a + b, 0);
    assert.ok(transactions < MESSAGES / 2, `one key's messages shared transactions (${transactions} for ${MESSAGES} messages)`);
    // At least one failure came after another message of the key in the same transaction.
    const midBatch = [...failing].filter((n) => {
      const i = txs.findIndex((t) => t.n === n && t.attempt === 1);
      return i > 0 && txs[i - 1]?.tx === txs[i]?.tx;
    });
    assert.ok(midBatch.length > 0, 'a failure fell in the middle of a same-key batch');
    // Handlers of one key never ran out of order: each first run follows the previous message's.
    const firstRuns = txs.filter((t) => t.attempt === 1).map((t) => t.n);
    const firstOf = new Map<number, number>();
    firstRuns.forEach((n, i) => {
      if (!firstOf.has(n)) firstOf.set(n, i);
    });
    for (let n = 2; n <= MESSAGES; n++)
      assert.ok((firstOf.get(n) ?? -1) > (firstOf.get(n - 1) ?? -1), `message ${n} first ran after ${n - 1}`);
  });

  test('a consumer process killed mid-batch: restarted, the key is applied in order, each once', async () => {
    const topic = uniqueId('zl-hot');
    const key = uniqueId('hot');
    const group = uniqueId('g');
    await send(topic, key);
    const start = (): ChildProcess =>
      spawn(process.execPath, [WORKER], {
        env: {
          ...process.env,
          ZL_PG_URL: PG_URL,
          ZL_SCHEMA: env.schema,
          ZL_TOPIC: topic,
          ZL_GROUP: group,
          ZL_KAFKA_BROKERS: BROKERS.join(','),
          ZL_WORKER: 'hot-1',
          ZL_LIFE: '2',
          ZL_MAX_STARTS: '3',
          ZL_RETRY_DELAY_MS: '20',
          // Slow enough that a kill always lands inside a shared transaction of the key.
          ZL_CREDIT_MS: '3',
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
    let child = start();
    try {
      for (const threshold of [100, 250]) {
        await waitFor(async () => (await applied(key)).length >= threshold, { what: `${threshold} applied`, timeoutMs: 60_000 });
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
        child = start();
      }
      await assertInOrderOnce(key);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });

  test('a second consumer joining (rebalance): the key is applied in order, each once', async () => {
    const topic = uniqueId('zl-hot');
    const key = uniqueId('hot');
    const groupId = uniqueId('g');
    const consumers: Consumer[] = [];
    // Messages applied when the first consumer gave its partitions up.
    const revokedAt: number[] = [];
    let processed = 0;
    const start = async (name: string) => {
      const c = consumer(topic, groupId, name);
      c.handle<{ n: number }>('credit', async (m, ctx) => {
        // Slow enough that the join lands while the key's transactions run.
        await new Promise((resolve) => setTimeout(resolve, 10));
        await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
      });
      c.on('processed', (e) => {
        if (e.outcome === 'processed') processed++;
      });
      c.on('revoked', (partitions) => {
        if (partitions.length > 0 && name === 'hot-a') revokedAt.push(processed);
      });
      await c.start();
      consumers.push(c);
    };
    await send(topic, key);
    try {
      await start('hot-a');
      await waitFor(async () => (await applied(key)).length >= 50, { what: '50 applied', timeoutMs: 60_000 });
      await start('hot-b');
      await assertInOrderOnce(key);
      assert.ok(
        revokedAt.some((n) => n < MESSAGES),
        `the first consumer gave its partitions up mid-stream (after ${revokedAt.join(', ')} of ${MESSAGES})`,
      );
    } finally {
      await Promise.all(consumers.map((c) => c.stop()));
    }
  });
});
