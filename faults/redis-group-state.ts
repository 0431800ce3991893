import { ioredis } from '../src/adapters/redis/redis-driver.ts';
import { redisStreamsKeys } from '../src/adapters/redis-streams/redis-streams-keys.ts';
import { replyFields } from '../src/adapters/redis-streams/redis-reply-fields.ts';
import { readPartitionCounts } from '../src/adapters/redis-streams/redis-streams-admin.ts';

/**
 * What a stalled drain on Redis Streams looks like from the broker, read while the consumers still run:
 * per partition stream, the group's read position and backlog (XINFO GROUPS: pending = read and not
 * acknowledged, lag = not yet read), which member holds the partition's lease and for how long, and the
 * group's consumers that hold pending entries; then the members whose sessions are live. One failing run
 * in `npm test` stalled with 314 messages on the streams and no outcome, and printed nothing that could
 * tell a partition nobody owns from an owner that stopped reading, or entries stuck in a dead member's
 * pending list.
 */
export async function describeRedisGroup(url: string, topic: string, groupId: string, prefix = 'zl'): Promise<string> {
  const keys = redisStreamsKeys(prefix);
  const redis = new ioredis.Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 2_000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const partitions = (await readPartitionCounts(redis, keys, [topic])).get(topic) ?? 0;
    const lines: string[] = [];
    for (let p = 0; p < partitions; p++) {
      const stream = keys.stream(topic, p);
      const groups = ((await redis.call('XINFO', 'GROUPS', stream).catch(() => [])) as unknown[][]).map(replyFields);
      const group = groups.find((g) => String(g.get('name')) === groupId);
      const lease = keys.lease(groupId, topic, p);
      const [owner, ttl] = await Promise.all([redis.get(lease), redis.pttl(lease)]);
      const consumers = group
        ? ((await redis.call('XINFO', 'CONSUMERS', stream, groupId).catch(() => [])) as unknown[][])
            .map(replyFields)
            .filter((c) => Number(c.get('pending')) > 0)
            .map((c) => `${String(c.get('name'))} pending ${String(c.get('pending'))} idle ${String(c.get('idle'))} ms`)
        : [];
      lines.push(
        `  ${topic}/${p}: length ${await redis.xlen(stream)}, ` +
          (group
            ? `group pending ${String(group.get('pending'))}, lag ${String(group.get('lag'))}, last delivered ${String(group.get('last-delivered-id'))}`
            : 'no group') +
          `; lease ${owner ?? 'none'}${owner ? ` (${ttl} ms left)` : ''}` +
          (consumers.length > 0 ? `; pending with ${consumers.join(', ')}` : ''),
      );
    }
    const members = await redis.zrange(keys.members(groupId), '0', '-1', 'WITHSCORES');
    const live: string[] = [];
    for (let i = 0; i + 1 < members.length; i += 2) live.push(`${members[i]} (session ends in ${Number(members[i + 1]) - Date.now()} ms)`);
    lines.push(`  members: ${live.join(', ') || 'none'}`);
    return `group ${groupId} on Redis, read from the broker while the consumers run:\n${lines.join('\n')}`;
  } catch (error) {
    return `group ${groupId} on Redis: could not be read (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
}
