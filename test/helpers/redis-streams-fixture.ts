import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { type RedisStreamsKeys, redisStreamsKeys } from '../../src/adapters/redis-streams/redis-streams-keys.ts';
import { RedisStreamsPublisher } from '../../src/adapters/redis-streams/redis-streams-publisher.ts';
import { RedisStreamsSubscriber } from '../../src/adapters/redis-streams/redis-streams-subscriber.ts';

export const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface RedisGroupFixture {
  prefix: string;
  topic: string;
  group: string;
  keys: RedisStreamsKeys;
  admin: RedisStreamsAdmin;
  publisher: RedisStreamsPublisher;
  /** A plain client, for playing another member or breaking keys by hand. */
  redis: Redis;
  subscriber: RedisStreamsSubscriber;
  /** Deletes the topic and closes the clients (the test closes its subscriptions first). */
  close(): Promise<void>;
}

/**
 * A topic `events` of `partitions` streams under a prefix of its own, with its admin, publisher, a plain
 * client and a subscriber (group `group`) set with `timing`: for tests of one member's group mechanics.
 */
export async function redisGroupFixture(
  partitions: number,
  timing: { heartbeatIntervalMs: number; sessionTimeoutMs: number; pollIntervalMs: number },
): Promise<RedisGroupFixture> {
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const topic = 'events';
  const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
  const publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
  const redis = new Redis(REDIS_URL);
  await admin.createTopic(topic, partitions);
  const subscriber = new RedisStreamsSubscriber({ url: REDIS_URL, prefix, clientId: prefix, ...timing });
  return {
    prefix,
    topic,
    group: 'group',
    keys: redisStreamsKeys(prefix),
    admin,
    publisher,
    redis,
    subscriber,
    async close() {
      await publisher.close();
      await admin.deleteTopic(topic).catch(() => {});
      await admin.close();
      redis.disconnect();
    },
  };
}
