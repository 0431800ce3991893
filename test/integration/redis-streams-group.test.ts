import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { RedisStreamsPublisher } from '../../src/adapters/redis-streams/redis-streams-publisher.ts';
import { RedisStreamsSubscriber } from '../../src/adapters/redis-streams/redis-streams-subscriber.ts';
import { groupUnderChurn } from '../helpers/group-under-churn.ts';
import { waitFor } from '../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const FAST = { heartbeatIntervalMs: 100, sessionTimeoutMs: 1_500, pollIntervalMs: 200 } as const;
let redis: Redis | undefined;

// Each namespace is a key prefix of its own; a dead member's leases and session run out on their own,
// and the survivor then takes over its pending entries.
await groupUnderChurn(
  {
    name: 'Redis Streams',
    takenOver: 'pending entries',
    async open(partitions) {
      const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
      const topic = 'events';
      const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
      await admin.createTopic(topic, partitions);
      const publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
      return {
        prefix,
        topic,
        group: 'group',
        publisher,
        subscriber: new RedisStreamsSubscriber({ url: REDIS_URL, prefix, clientId: prefix, ...FAST }),
        async cleanup() {
          await publisher.close();
          await admin.deleteTopic(topic);
          await admin.close();
        },
      };
    },
    workerSubscriber: (prefix) => new RedisStreamsSubscriber({ url: REDIS_URL, prefix, ...FAST }),
    connectionFault: {
      title: 'a member whose connections are killed mid-stream delivers every record, keys in order',
      timeoutMs: 90_000,
      rounds: 20,
      recordsPerRound: 50,
      drainTimeoutMs: 45_000,
      connectionsPerMember: 2,
      async breakConnections(prefix) {
        redis ??= new Redis(REDIS_URL);
        const admin = redis;
        const clients = await waitFor(
          async () => {
            const named = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'))
              .split('\n')
              .filter((line) => line.includes(` name=zeroloss-${prefix}-`));
            return named.length === 2 ? named : undefined;
          },
          { timeoutMs: 10_000, what: "the member's two connections to be back" },
        );
        for (const line of clients) await admin.call('CLIENT', 'KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!).catch(() => {});
        return clients.length;
      },
      close() {
        redis?.disconnect();
        redis = undefined;
      },
    },
  },
  import.meta.filename,
);
