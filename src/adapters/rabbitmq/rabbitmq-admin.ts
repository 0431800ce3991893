import type { ChannelModel } from 'amqplib';
import { amqp } from './rabbitmq-driver.ts';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import { rabbitError } from './rabbitmq-errors.ts';
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
export class RabbitMqAdmin {
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
      this.#conn = undefined;
      throw rabbitError(error, what);
    }
  }
}
