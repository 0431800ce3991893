import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import { redisGroupFixture } from '../helpers/redis-streams-fixture.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * A rebalance gives a partition back: onRevoke runs, then the lease is released. If the release fails (the
 * connection drops just then, as around a broker restart), the partition must not stay behind as revoked:
 * the member kept renewing its lease, so nobody else could take it, and when the assignment gave it back to
 * the same member it was neither wanted nor read — its records stayed on the stream, never delivered (a
 * clean-clone `npm test` run lost 314 of 1,000 messages that way in the Redis fault test). Here the release
 * is made to fail by lease keys of the wrong type while a second member (written into the group by hand)
 * takes half the partitions; then the keys and the group are put back as they were.
 */
test('Redis Streams: a partition whose release failed is read again once the assignment gives it back', { timeout: 60_000 }, async () => {
  const { topic, group, keys, publisher, redis, subscriber, ...fixture } = await redisGroupFixture(2, {
    heartbeatIntervalMs: 100,
    sessionTimeoutMs: 1_500,
    pollIntervalMs: 200,
  });
  const received: IncomingRecord[] = [];
  const revoked: number[] = [];
  const errors: Error[] = [];
  const member = await subscriber.subscribe({
    groupId: group,
    topics: [topic],
    onRecords: (batch) => received.push(...batch.records),
    onRevoke: async (partitions) => {
      revoked.push(...partitions.map((p) => p.partition));
    },
    onError: (error) => errors.push(error),
  });
  try {
    await waitFor(() => member.assignment().length === 2, { what: 'the member to own both partitions', timeoutMs: 10_000 });
    const leases = [0, 1].map((p) => keys.lease(group, topic, p));
    for (const lease of leases) {
      await redis.del(lease);
      await redis.hset(lease, 'broken', '1');
    }
    const [seconds, micros] = await redis.time();
    await redis.zadd(keys.members(group), Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000) + 60_000, 'zz-other');
    await redis.hset(keys.memberTopics(group), 'zz-other', JSON.stringify([topic]));
    // onRevoke ran for the partition given back, and the release after it failed (renewals fail too, with
    // their own prefix).
    await waitFor(() => revoked.length === 1 && errors.some((e) => /WRONGTYPE/.test(e.message) && !/renewing leases/.test(e.message)), {
      what: 'a partition revoked and its release failed',
      timeoutMs: 10_000,
    });
    const given = revoked[0] as number;
    await redis.zrem(keys.members(group), 'zz-other');
    await redis.hdel(keys.memberTopics(group), 'zz-other');
    for (const lease of leases) {
      await redis.del(lease);
      await redis.set(lease, member.memberId, 'PX', 10_000);
    }
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => partitionFor(k, 2) === given) as string;
    const [outcome] = await publisher.publish([{ topic, key, value: Buffer.from('after'), headers: {} }]);
    assert.ok(outcome?.ok);
    await waitFor(() => received.some((r) => r.partition === given && r.key === key), {
      what: `the record on partition ${given}, given back and returned, to be delivered`,
      timeoutMs: 10_000,
    });
    assert.equal(member.assignment().length, 2);
  } finally {
    await member.close();
    await fixture.close();
  }
});
