import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { startRedisInstance } from '../../../infra/services/redis-instance.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { migrate } from '../../../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { RedisInboxCache } from '../../../src/adapters/redis/redis-inbox-cache.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import type { InboxCache } from '../../../src/ports/inbox-cache.ts';
import { BROKERS, createEffectTable, createTopics, insertEffect, topicFamily, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { assertExactlyOnceInOrder, effectCount, freePort, publishWorkload } from '../../helpers/consumer-workload.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { prng } from '../../helpers/prng.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/**
 * Acceptance 2 (C4, N2): Redis stopped (and later flushed) mid-run, and Postgres crash-restarted mid-run:
 * every effect still exactly once and in key order, nothing dead-lettered. Both run on throwaway instances
 * on their own ports, never the machine's shared services. Sizes: ZL_FAULT_MESSAGES (6000), ZL_FAULT_KEYS (100).
 */
const MESSAGES = Number(process.env.ZL_FAULT_MESSAGES ?? 6_000);
const KEYS = Number(process.env.ZL_FAULT_KEYS ?? 100);
const DUPLICATES = Math.floor(MESSAGES / 10);

function twoConsumers(db: Database, schema: string, topic: string, cache: InboxCache | undefined, publisher: KafkaPublisher): Consumer[] {
  const groupId = uniqueId('g');
  return [1, 2].map((i) => {
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({
        brokers: BROKERS,
        clientId: `zl-fault-${i}`,
        sessionTimeoutMs: 6_000,
        heartbeatIntervalMs: 500,
        maxWaitMs: 100,
      }),
      db,
      publisher,
      cache,
      schema,
      config: { groupId, topics: [topic], commitIntervalMs: 100, unavailableBackoff: { baseMs: 50, maxMs: 500 } },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    return consumer;
  });
}

function duplicatesVia(consumers: Consumer[], via: 'cache' | 'inbox'): Promise<number> {
  return Promise.all(
    consumers.map(async (c) => {
      const metric = await c.registry.getSingleMetric('zeroloss_consumer_duplicates_total')?.get();
      return (
        metric?.values.filter((v) => v.labels.via === via && v.labels.group === c.config.groupId).reduce((a, v) => a + v.value, 0) ?? 0
      );
    }),
  ).then((counts) => counts.reduce((a, b) => a + b, 0));
}

describe('service faults mid-run: still exactly once', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  test('Redis stopped mid-run, then back empty (flushed): exactly once, in order', async () => {
    const env = await freshSchema('zlc');
    cleanups.push(() => env.cleanup());
    await createEffectTable(env.db, env.schema);
    const redis = await startRedisInstance({ port: await freePort() });
    cleanups.push(() => redis.stop());
    const cache = new RedisInboxCache({ url: redis.url, commandTimeoutMs: 100 });
    cleanups.push(() => cache.close());
    const topic = uniqueId('zl-redis-fault');
    await createTopics(topicFamily(topic), 4);
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    cleanups.push(() => publisher.close());
    const consumers = twoConsumers(env.db, env.schema, topic, cache, publisher);
    for (const c of consumers) await c.start();
    cleanups.push(() => Promise.all(consumers.map((c) => c.stop())));

    const publishing = publishWorkload({
      topic,
      messages: MESSAGES,
      keys: KEYS,
      duplicates: DUPLICATES,
      chunk: 500,
      pauseMs: 150,
      random: prng(7),
    });
    await waitFor(async () => (await effectCount(env.pool, env.schema)) >= MESSAGES / 3, { what: 'a third applied', timeoutMs: 120_000 });
    const viaCacheBefore = await duplicatesVia(consumers, 'cache');
    await redis.stop();
    await waitFor(async () => (await effectCount(env.pool, env.schema)) >= (MESSAGES * 2) / 3, {
      what: 'two thirds applied',
      timeoutMs: 120_000,
    });
    const viaInboxWhileDown = await duplicatesVia(consumers, 'inbox');
    await redis.start();
    await redis.flush();
    await publishing;
    await waitFor(async () => (await effectCount(env.pool, env.schema)) === MESSAGES, { what: 'all applied', timeoutMs: 120_000 });
    await assertExactlyOnceInOrder(env.pool, env.schema, MESSAGES, KEYS);
    assert.ok(viaCacheBefore > 0, 'duplicates were skipped by the Redis fast path while it was up');
    assert.ok(viaInboxWhileDown > 0, 'with Redis down, the inbox still caught duplicates');
    console.log(
      `[redis fault] ${MESSAGES} messages + ${DUPLICATES} duplicates: duplicates skipped via Redis ${await duplicatesVia(consumers, 'cache')}, ` +
        `via inbox ${await duplicatesVia(consumers, 'inbox')}; effects ${MESSAGES}, each once`,
    );
  });

  test('Postgres crash-restarted mid-run: exactly once, in order, nothing dead-lettered', async () => {
    const instance = await startPostgresInstance({ port: await freePort(), name: uniqueId('zlc-consumer') });
    cleanups.push(() => instance.discard());
    const pool = new pg.Pool({ connectionString: instance.url, max: 20, connectionTimeoutMillis: 2_000 });
    pool.on('error', () => {});
    cleanups.push(() => pool.end());
    const db = pgDatabase({ pool });
    const schema = 'zl_fault';
    await migrate(db, schema);
    await createEffectTable(db, schema);
    const topic = uniqueId('zl-pg-fault');
    await createTopics(topicFamily(topic), 4);
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    cleanups.push(() => publisher.close());
    const consumers = twoConsumers(db, schema, topic, undefined, publisher);
    let unavailable = 0;
    for (const c of consumers) {
      c.on('error', (e) => {
        if ((e as { code?: string }).code === 'ZL_STORE_UNAVAILABLE') unavailable++;
      });
      await c.start();
    }
    cleanups.push(() => Promise.all(consumers.map((c) => c.stop())));

    const publishing = publishWorkload({
      topic,
      messages: MESSAGES,
      keys: KEYS,
      duplicates: DUPLICATES,
      chunk: 500,
      pauseMs: 150,
      random: prng(11),
    });
    await waitFor(async () => (await effectCount(pool, schema)) >= MESSAGES / 3, { what: 'a third applied', timeoutMs: 120_000 });
    await instance.restart('immediate');
    await publishing;
    await waitFor(async () => (await effectCount(pool, schema).catch(() => 0)) === MESSAGES, { what: 'all applied', timeoutMs: 180_000 });
    await assertExactlyOnceInOrder(pool, schema, MESSAGES, KEYS);
    assert.ok(unavailable > 0, 'the consumers did see the database go away');
    console.log(`[postgres fault] crash restart mid-run: ${unavailable} waits on the database reported; ${MESSAGES} effects, each once`);
  });
});
