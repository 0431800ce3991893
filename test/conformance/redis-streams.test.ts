import { randomBytes } from 'node:crypto';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { RedisStreamsPublisher } from '../../src/adapters/redis-streams/redis-streams-publisher.ts';
import { RedisStreamsSubscriber } from '../../src/adapters/redis-streams/redis-streams-subscriber.ts';
import { transportConformance } from './transport-conformance.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// The same suite as Kafka's, on the shared Redis: a key prefix of its own per test, so nothing is shared
// with other runs, and every key under it is deleted afterwards.
transportConformance('Redis Streams', async () => {
  const prefix = `zl-conf-${randomBytes(4).toString('hex')}`;
  const publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
  const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
  const topics: string[] = [];
  return {
    publisher,
    // Short enough that a closed member's partitions move within the suite's waits.
    subscriber: new RedisStreamsSubscriber({
      url: REDIS_URL,
      prefix,
      heartbeatIntervalMs: 100,
      sessionTimeoutMs: 2_000,
      pollIntervalMs: 250,
    }),
    async createTopic(topic, partitions) {
      await admin.createTopic(topic, partitions);
      topics.push(topic);
    },
    async cleanup() {
      await publisher.close();
      for (const topic of topics) await admin.deleteTopic(topic).catch(() => {});
      await admin.close();
    },
  };
});
