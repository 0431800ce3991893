import type { Channel, ChannelModel } from 'amqplib';
import { amqp } from './rabbitmq-driver.ts';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { GroupAdmin, GroupDeletion } from '../../ports/group-admin.ts';
import { isNotFound, rabbitError } from './rabbitmq-errors.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { declareTopic, deleteTopic, probePartitions } from './rabbitmq-topology.ts';

export const rabbitMqAdminConfigSchema = z
  .object({
    /** amqp://user:password@host:port/vhost */
    url: z.string().min(1),
    /** Stream retention (x-max-length-bytes); unset keeps everything. Like Kafka retention, it can drop unread records. */
    maxLengthBytes: z.number().int().positive().optional(),
  })
  .strict();

export type RabbitMqAdminConfig = z.input<typeof rabbitMqAdminConfigSchema>;

const MAX_PARTITIONS = 1_000;

/** Creates, counts and deletes topics (one stream queue per partition), and deletes a group's offsets. */
export class RabbitMqAdmin implements GroupAdmin {
  readonly config: Readonly<z.output<typeof rabbitMqAdminConfigSchema>>;
  #conn: Promise<ChannelModel> | undefined;

  constructor(config: RabbitMqAdminConfig) {
    this.config = parseConfig(rabbitMqAdminConfigSchema, config, 'rabbitmq admin');
  }

  /** Creates the topic, or grows it to `partitions`; never shrinks one. */
  async createTopic(topic: string, partitions: number): Promise<void> {
    validateTopic(topic);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
    }
    await this.#run(`creating topic ${topic}`, (conn) => declareTopic(conn, topic, partitions, this.config.maxLengthBytes));
  }

  async partitions(topic: string): Promise<number> {
    validateTopic(topic);
    return this.#run(`reading topic ${topic}`, (conn) => probePartitions(conn, topic));
  }

  async deleteTopic(topic: string): Promise<void> {
    validateTopic(topic);
    await this.#run(`deleting topic ${topic}`, (conn) => deleteTopic(conn, topic));
  }

  /** Deletes the committed offsets of a group on a topic (the group then starts over where startFrom says). */
  async deleteGroupOffsets(groupId: string, topic: string, partitions: number): Promise<void> {
    await this.#run(`deleting offsets of ${groupId}`, async (conn) => {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      try {
        for (let p = 0; p < partitions; p++) await ch.deleteQueue(rabbitNames.offset(groupId, topic, p));
      } finally {
        await ch.close().catch(() => {});
      }
    });
  }

  /**
   * `zeroloss groups delete`: the group's offset queue of every partition of `topics`. A live group has
   * its members' fanout exchange (auto-deleted with the last member), so that exchange's existence is the
   * refusal; the offset queues' own 7-day expiry stays the fallback for groups nobody deletes.
   */
  async deleteGroup(groupId: string, topics: string[]): Promise<GroupDeletion> {
    for (const topic of topics) validateTopic(topic);
    return this.#run(`deleting group ${groupId}`, async (conn) => {
      if (await exists(conn, (ch) => ch.checkExchange(rabbitNames.group(groupId)))) {
        throw new ZerolossError('ZL_GROUP_ACTIVE', `group ${groupId} has live members; stop its consumers first`, {
          details: { groupId },
        });
      }
      // Checked one by one (a failed check closes its channel) to say what went; deleted on one channel.
      const deleted: string[] = [];
      for (const topic of topics) {
        const partitions = await probePartitions(conn, topic);
        for (let p = 0; p < partitions; p++) {
          const queue = rabbitNames.offset(groupId, topic, p);
          if (await exists(conn, (ch) => ch.checkQueue(queue))) deleted.push(queue);
        }
      }
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      try {
        for (const queue of deleted) await ch.deleteQueue(queue);
      } finally {
        await ch.close().catch(() => {});
      }
      return { groupId, deleted };
    });
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn) await (await conn.catch(() => undefined))?.close().catch(() => {});
  }

  async #run<T>(what: string, fn: (conn: ChannelModel) => Promise<T>): Promise<T> {
    try {
      this.#conn ??= amqp.connect(this.config.url).then((conn) => {
        conn.on('error', () => {});
        conn.on('close', () => {
          this.#conn = undefined;
        });
        return conn;
      });
      return await fn(await this.#conn);
    } catch (error) {
      // Whatever failed, the next call starts on a fresh connection; this one is closed, not just
      // forgotten: an open one left behind kept the process alive after the command had answered.
      const conn = this.#conn;
      this.#conn = undefined;
      if (conn) await (await conn.catch(() => undefined))?.close().catch(() => {});
      throw rabbitError(error, what);
    }
  }
}

/** Whether a passive check finds the entity; a channel of its own, since a failed check closes it. */
async function exists(conn: ChannelModel, check: (ch: Channel) => Promise<unknown>): Promise<boolean> {
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  try {
    await check(ch);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  } finally {
    await ch.close().catch(() => {});
  }
}
