import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redisStreams } from '../../src/entry/redis-streams.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { describeRedisGroup } from '../../faults/redis-group-state.ts';
import { uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// The fault harness's view of a stalled Redis Streams group: what it prints must tell an owned partition
// with entries read and not acknowledged from one nobody owns, and name the member that holds them.
test('describeRedisGroup: per partition the group backlog, the lease holder and who holds pending entries; the live members', async () => {
  const prefix = uniqueName('zlfxg');
  const transport = redisStreams(REDIS_URL, { prefix, subscriber: { pollIntervalMs: 100 } });
  const topic = 'stalls';
  const groupId = uniqueName('g');
  const received: IncomingRecord[] = [];
  try {
    await transport.ensureTopic(topic, 2);
    const outcomes = await transport.publisher.publish(
      ['a', 'b', 'c', 'd', 'e'].map((key) => ({ topic, key, value: Buffer.from(key), headers: {} })),
    );
    assert.ok(outcomes.every((o) => o.ok));
    // Read and never committed: the entries stay pending with this member.
    const subscription = await transport.subscriber.subscribe({ groupId, topics: [topic], onRecords: (b) => received.push(...b.records) });
    try {
      await waitFor(() => received.length === 5, { what: 'the five records delivered', timeoutMs: 10_000 });
      const text = await describeRedisGroup(REDIS_URL, topic, groupId, prefix);
      const lines = text.split('\n');
      assert.match(lines[0] ?? '', new RegExp(`group ${groupId} on Redis`));
      for (const p of [0, 1]) {
        const line = lines.find((l) => l.includes(`${topic}/${p}:`)) ?? '';
        const here = received.filter((r) => r.partition === p).length;
        assert.match(line, new RegExp(`length ${here}, group pending ${here}, lag 0`), line);
        assert.match(line, /lease \S+ \(\d+ ms left\)/, line);
        if (here > 0) assert.match(line, new RegExp(`pending with \\S+ pending ${here} idle \\d+ ms`), line);
      }
      assert.match(lines.at(-1) ?? '', /members: \S+ \(session ends in -?\d+ ms\)/);
    } finally {
      await subscription.close();
    }
    const gone = await describeRedisGroup(REDIS_URL, topic, 'no-such-group', prefix);
    assert.match(gone, /stalls\/0: length \d+, no group; lease none/);
    // Called by a drain that stalled, perhaps because the broker is away: it says so and never throws.
    assert.match(
      await describeRedisGroup('redis://127.0.0.1:1', topic, groupId, prefix),
      new RegExp(`group ${groupId} on Redis: could not be read`),
    );
  } finally {
    await transport.topicAdmin.deleteTopic(topic).catch(() => {});
    await transport.close();
  }
});
