import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { GroupAdmin, GroupDeletion } from '../../ports/group-admin.ts';
import { connectRedis } from './redis-streams-connection.ts';
import { redisError } from './redis-streams-errors.ts';
import { redisStreamsKeys } from './redis-streams-keys.ts';
import { CREATE_TOPIC, DELETE_GROUP, runScript } from './redis-streams-scripts.ts';

export const redisStreamsAdminConfigSchema = z
  .object({
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. */
    prefix: z.string().min(1).default('zl'),
    commandTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

export type RedisStreamsAdminConfig = z.input<typeof redisStreamsAdminConfigSchema>;

const MAX_PARTITIONS = 10_000;

/** Creates, lists and deletes topics (a partition count plus one stream per partition). */
export class RedisStreamsAdmin implements GroupAdmin {
  readonly config: Readonly<z.output<typeof redisStreamsAdminConfigSchema>>;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof redisStreamsKeys>;

  constructor(config: RedisStreamsAdminConfig) {
    this.config = parseConfig(redisStreamsAdminConfigSchema, config, 'redis streams admin');
    this.#redis = connectRedis(this.config.url, this.config.commandTimeoutMs, 'zeroloss-admin');
    this.#keys = redisStreamsKeys(this.config.prefix);
  }

  /** Creates the topic, or grows it to `partitions`; never shrinks one. Returns the count in force. */
  async createTopic(topic: string, partitions: number): Promise<number> {
    validateTopic(topic);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
    }
    const streams = Array.from({ length: partitions }, (_, p) => this.#keys.stream(topic, p));
    try {
      return Number(await runScript(this.#redis, CREATE_TOPIC, [this.#keys.topic(topic), ...streams], [partitions]));
    } catch (error) {
      throw redisError(error, `creating topic ${topic}`);
    }
  }

  /** The partition count of each topic that exists. */
  async partitions(topics: string[]): Promise<Map<string, number>> {
    return readPartitionCounts(this.#redis, this.#keys, topics);
  }

  /** Deletes the topic: its count first (publishers then fail), then its streams and leases. */
  async deleteTopic(topic: string): Promise<void> {
    validateTopic(topic);
    try {
      const count = Number((await this.#redis.get(this.#keys.topic(topic))) ?? 0);
      await this.#redis.del(this.#keys.topic(topic));
      const streams = Array.from({ length: count }, (_, p) => this.#keys.stream(topic, p));
      if (streams.length > 0) await this.#redis.del(...streams);
      const stream = this.#redis.scanStream({ match: this.#keys.topicLeasePattern(topic), count: 500 });
      for await (const leases of stream as AsyncIterable<string[]>) if (leases.length > 0) await this.#redis.del(...leases);
    } catch (error) {
      throw redisError(error, `deleting topic ${topic}`);
    }
  }

  /** `zeroloss groups delete`: the group on every partition stream of `topics`, with its leases. */
  async deleteGroup(groupId: string, topics: string[]): Promise<GroupDeletion> {
    for (const topic of topics) validateTopic(topic);
    const counts = await this.partitions(topics);
    const streams: string[] = [];
    const leases: string[] = [];
    for (const topic of topics) {
      for (let p = 0; p < (counts.get(topic) ?? 0); p++) {
        streams.push(this.#keys.stream(topic, p));
        leases.push(this.#keys.lease(groupId, topic, p));
      }
    }
    let reply: unknown;
    try {
      reply = await runScript(
        this.#redis,
        DELETE_GROUP,
        [this.#keys.members(groupId), this.#keys.memberTopics(groupId), ...streams, ...leases],
        [groupId, streams.length],
      );
    } catch (error) {
      throw redisError(error, `deleting group ${groupId}`);
    }
    if (reply === -1) {
      throw new ZerolossError('ZL_GROUP_ACTIVE', `group ${groupId} has live members; stop its consumers first`, {
        details: { groupId },
      });
    }
    return { groupId, deleted: (reply as Array<string | Buffer>).map(String) };
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

export async function readPartitionCounts(
  redis: Redis,
  keys: ReturnType<typeof redisStreamsKeys>,
  topics: string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (topics.length === 0) return counts;
  const values = await redis.mget(...topics.map((t) => keys.topic(t)));
  topics.forEach((topic, i) => {
    const n = Number(values[i]);
    if (values[i] !== null && Number.isInteger(n) && n > 0) counts.set(topic, n);
  });
  return counts;
}
