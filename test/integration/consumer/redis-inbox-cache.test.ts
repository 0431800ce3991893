import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { RedisInboxCache } from '../../../src/adapters/redis/redis-inbox-cache.ts';
import { contentDigest } from '../../../src/consumer/content-digest.ts';
import type { ProcessedEvent } from '../../../src/consumer/consumer-events.ts';
import type { InboxCache } from '../../../src/ports/inbox-cache.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

const REDIS_URL = process.env.ZL_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('Redis inbox cache (fast path, never the authority)', () => {
  let cache: RedisInboxCache;
  const prefix = uniqueId('zltest');
  before(() => {
    cache = new RedisInboxCache({ url: REDIS_URL, prefix, ttlMs: 60_000 });
  });
  after(async () => {
    await cache.close();
  });

  test('remembers keys per group with a TTL', async () => {
    // Until the connection is up, commands fail fast and read as "unavailable" (undefined), by design.
    assert.equal(await waitFor(async () => (await cache.has('g1', 'k')) === false), true);
    await cache.add('g1', 'k');
    assert.equal(await cache.has('g1', 'k'), true);
    assert.equal(await cache.has('g2', 'k'), false, 'groups do not share keys');
  });

  test('the lock admits one holder; only the holder releases it; it expires by itself', async () => {
    const token = await cache.lock('g1', 'order-1', 60_000);
    assert.ok(token);
    assert.equal(await cache.lock('g1', 'order-1', 60_000), null);
    await cache.unlock('g1', 'order-1', 'not-the-token');
    assert.equal(await cache.lock('g1', 'order-1', 60_000), null, 'a stranger cannot release it');
    await cache.unlock('g1', 'order-1', token);
    const again = await cache.lock('g1', 'order-1', 100);
    assert.ok(again);
    assert.ok(await waitFor(async () => (await cache.lock('g1', 'order-1', 60_000)) !== null, { what: 'lock expiry' }));
  });

  test('answers "unavailable" at once when Redis cannot be reached', async () => {
    const down = new RedisInboxCache({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 100 });
    try {
      const started = Date.now();
      assert.equal(await down.has('g', 'k'), undefined);
      assert.equal(await down.lock('g', 'k', 1_000), undefined);
      await down.add('g', 'k');
      await down.unlock('g', 'k', 't');
      assert.ok(Date.now() - started < 2_000);
    } finally {
      await down.close();
    }
  });

  test('a copy arriving while another holder has the lock waits, then is skipped once the holder applied it', async () => {
    const env = await freshSchema('zlc');
    const topic = uniqueId('zl-lock');
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    // A spy over the real cache: how often the consumer tried the lock.
    let lockAttempts = 0;
    const spy: InboxCache = {
      has: (g, k) => cache.has(g, k),
      add: (g, k) => cache.add(g, k),
      lock: (g, k, ttl) => {
        lockAttempts++;
        return cache.lock(g, k, ttl);
      },
      unlock: (g, k, t) => cache.unlock(g, k, t),
      close: async () => {},
    };
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db: env.db,
      publisher,
      cache: spy,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], inbox: { lockWaitMs: 30_000 } },
    });
    try {
      await createEffectTable(env.db, env.schema);
      await createTopics(topicFamily(topic), 1);
      let runs = 0;
      consumer.handle('credit', async (m, ctx) => {
        runs++;
        await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: 1, type: m.type });
      });
      const events: ProcessedEvent[] = [];
      consumer.on('processed', (e) => events.push(e));
      const record = zlRecord({ topic, key: 'k', type: 'credit', payload: { n: 1 } });
      const id = record.headers['zl-id'] as string;
      // Another consumer (played by the test) holds the lock for this message.
      const token = (await cache.lock(consumer.config.groupId, id, 60_000)) as string;
      assert.ok(token);
      await consumer.start();
      assert.ok((await publisher.publish([record]))[0]?.ok);
      await waitFor(() => lockAttempts >= 3, { what: 'the copy retrying the held lock' });
      assert.equal(runs, 0, 'the copy waits while the lock is held');
      // The holder remembers what it applied: the message id with its content digest.
      const digest = contentDigest({ id, type: 'credit', key: 'k', version: 1, payload: record.value });
      await cache.add(consumer.config.groupId, `${id}#${digest}`);
      await cache.unlock(consumer.config.groupId, id, token);
      await waitFor(() => events.length === 1, { what: 'the copy handled' });
      assert.equal(runs, 0);
      assert.deepEqual([events[0]?.outcome, events[0]?.via], ['duplicate', 'cache']);
    } finally {
      await consumer.stop();
      await publisher.close();
      await env.cleanup();
    }
  });
});
