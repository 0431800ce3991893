import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { RedisStreamsPublisher } from '../../src/adapters/redis-streams/redis-streams-publisher.ts';
import { RedisStreamsSubscriber } from '../../src/adapters/redis-streams/redis-streams-subscriber.ts';
import { consumerOverTransport } from '../helpers/consumer-over-transport.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// The consumer runtime unchanged over Redis Streams, in a key prefix of its own, deleted afterwards.
consumerOverTransport('Redis Streams', async () => {
  const topic = 'orders';
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
  const topics = [topic, `${topic}.dlq`, `${topic}.retry.1`];
  for (const t of topics) await admin.createTopic(t, 4);
  const publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
  return {
    topic,
    publisher,
    subscriber: () =>
      new RedisStreamsSubscriber({ url: REDIS_URL, prefix, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000, pollIntervalMs: 100 }),
    async retried() {
      const redis = new Redis(REDIS_URL);
      let retried = 0;
      for (let p = 0; p < 4; p++) retried += await redis.xlen(`${prefix}:stream:${topic}.retry.1:${p}`);
      redis.disconnect();
      return retried;
    },
    async cleanup() {
      await publisher.close();
      for (const t of topics) await admin.deleteTopic(t);
      await admin.close();
    },
  };
});
