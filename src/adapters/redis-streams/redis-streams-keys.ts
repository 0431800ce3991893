/**
 * Every Redis key the Redis Streams transport uses, in one place. Topic names cannot contain ':'
 * (validateTopic) and partitions are numbers, so reading a key from the right is unambiguous even when
 * a group id contains ':'.
 *
 * - `<prefix>:topic:<topic>`: the partition count, written last by createTopic (a publisher that sees it
 *   finds every stream in place).
 * - `<prefix>:stream:<topic>:<partition>`: one stream per partition; the consumer groups live on it.
 * - `<prefix>:group:<group>:members`: sorted set of live member ids, scored by the expiry of their session.
 * - `<prefix>:group:<group>:topics`: hash member id → JSON array of the topics it subscribed.
 * - `<prefix>:lease:<group>:<topic>:<partition>`: the member that owns the partition, with a PX expiry.
 */
export interface RedisStreamsKeys {
  topic(topic: string): string;
  stream(topic: string, partition: number): string;
  members(groupId: string): string;
  memberTopics(groupId: string): string;
  lease(groupId: string, topic: string, partition: number): string;
  /** SCAN pattern of the leases of one topic, for deleting it. */
  topicLeasePattern(topic: string): string;
}

export function redisStreamsKeys(prefix: string): RedisStreamsKeys {
  return {
    topic: (topic) => `${prefix}:topic:${topic}`,
    stream: (topic, partition) => `${prefix}:stream:${topic}:${partition}`,
    members: (groupId) => `${prefix}:group:${groupId}:members`,
    memberTopics: (groupId) => `${prefix}:group:${groupId}:topics`,
    lease: (groupId, topic, partition) => `${prefix}:lease:${groupId}:${topic}:${partition}`,
    topicLeasePattern: (topic) => `${escapeGlob(prefix)}:lease:*:${topic}:*`,
  };
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
