import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { HEADER } from '../../core/envelope.ts';
import { validateTopic } from '../../core/message.ts';
import type {
  BrokerInspector,
  BrokerRecord,
  CommittedOffset,
  PartitionRange,
  PartitionWatermarks,
  ReadStats,
} from '../../ports/broker-inspector.ts';
import { amqp } from './rabbitmq-driver.ts';
import { isNotFound, rabbitError } from './rabbitmq-errors.ts';
import { toRecord } from './rabbitmq-message.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { peekOffset } from './rabbitmq-offset-peek.ts';
import { StreamCursor, streamBounds } from './rabbitmq-stream-cursor.ts';
import { registeredTopics } from './rabbitmq-topic-registry.ts';
import { probePartitions } from './rabbitmq-topology.ts';

export const rabbitMqInspectorConfigSchema = z
  .object({
    /** amqp://user:password@host:port/vhost */
    url: z.string().min(1),
    /**
     * How long a read from a stream's start or end waits for a first message before taking the stream as
     * empty. AMQP has no other way to ask; too short on a slow broker reports a stream as emptier than it is.
     */
    emptyWaitMs: z.number().int().positive().default(250),
    /** After a message of the last chunk, how long without another before the end counts as reached. */
    quietMs: z.number().int().positive().default(50),
    /** A range whose next record has not arrived for this long is given up and reported incomplete. */
    idleMs: z.number().int().positive().default(5_000),
    /** Messages in flight per stream read (consumer prefetch): what a read holds in memory at a time. */
    batchRecords: z.number().int().positive().default(500),
  })
  .strict();

const PROBES_AT_ONCE = 16;

export type RabbitMqInspectorConfig = z.input<typeof rabbitMqInspectorConfigSchema>;

/**
 * Operations' read-only view of RabbitMQ streams. A stream consumer on a channel of its own only moves its
 * own cursor, so reconcile, trace, status and the relay's broker check read the partitions without taking
 * anything from a group. Watermarks come from reads at 'first' and 'last' (see streamBounds), committed
 * offsets from the groups' offset queues (see peekOffset), topic names from the `zl.topics` registry.
 *
 * Times: `offsetsForTime` is the broker's append time (a stream keeps it per chunk and attaches a reader
 * at a time), as Kafka's record time is the send time. That time is not delivered with a message over AMQP
 * 0-9-1 and the publisher sets no AMQP timestamp, so a record read back carries its `zl-created-at` header
 * (when the outbox committed it, before the send) as its timestamp.
 */
export class RabbitMqInspector implements BrokerInspector {
  readonly config: Readonly<z.output<typeof rabbitMqInspectorConfigSchema>>;
  #conn: Promise<ChannelModel> | undefined;

  constructor(config: RabbitMqInspectorConfig) {
    this.config = parseConfig(rabbitMqInspectorConfigSchema, config, 'rabbitmq inspector');
  }

  async listTopics(): Promise<string[]> {
    return this.#run('listing topics', async (conn) => {
      const names = await registeredTopics(conn, this.config);
      const listed: string[] = [];
      // A few probes at a time: each takes a channel of its own.
      for (let i = 0; i < names.length; i += PROBES_AT_ONCE) {
        const batch = names.slice(i, i + PROBES_AT_ONCE);
        const counts = await Promise.all(batch.map((t) => probePartitions(conn, t)));
        listed.push(...batch.filter((_, j) => counts[j]! > 0));
      }
      return listed;
    });
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[] | undefined> {
    validateTopic(topic);
    return this.#run(`reading the watermarks of ${topic}`, async (conn) => {
      const count = await probePartitions(conn, topic);
      if (count === 0) return undefined;
      const timing = this.#timing;
      return Promise.all(
        Array.from({ length: count }, async (_, partition) => ({
          partition,
          ...(await streamBounds(conn, rabbitNames.partition(topic, partition), timing)),
        })),
      );
    });
  }

  /**
   * Per partition, the first record RabbitMQ appended at or after `atMs` (a read attached at that time);
   * the high watermark when none was. Stream chunks carry the time they were written, in whole seconds
   * here, so the answer may be up to a second early, never late: a window read from it holds every record
   * written from `atMs` on. Only a partition with nothing after `atMs` costs a watermark read.
   */
  async offsetsForTime(topic: string, atMs: number): Promise<Array<{ partition: number; offset: bigint }>> {
    validateTopic(topic);
    return this.#run(`finding ${topic} at ${new Date(atMs).toISOString()}`, async (conn) => {
      const count = await probePartitions(conn, topic);
      return Promise.all(
        Array.from({ length: count }, async (_, partition) => {
          const queue = rabbitNames.partition(topic, partition);
          const cursor = await StreamCursor.open(conn, queue, { atMs }, 1);
          let got: Awaited<ReturnType<StreamCursor['next']>>;
          try {
            got = await cursor.next(this.config.emptyWaitMs);
          } finally {
            await cursor.close();
          }
          return { partition, offset: got ? got.offset : (await streamBounds(conn, queue, this.#timing)).high };
        }),
      );
    });
  }

  async *read(ranges: PartitionRange[], stats: ReadStats = { records: 0, incomplete: [] }): AsyncIterable<BrokerRecord> {
    for (const range of ranges) {
      if (range.from >= range.to) continue;
      const where = { topic: range.topic, partition: range.partition, to: range.to };
      let cursor: StreamCursor;
      try {
        cursor = await StreamCursor.open(
          await this.#connection(),
          rabbitNames.partition(range.topic, range.partition),
          range.from,
          this.config.batchRecords,
        );
      } catch (error) {
        stats.incomplete.push({ ...where, reached: range.from, reason: `stream not readable: ${rabbitError(error, 'reading').message}` });
        continue;
      }
      let position = range.from;
      let gapReported = false;
      try {
        while (position < range.to) {
          let got: Awaited<ReturnType<StreamCursor['next']>>;
          try {
            got = await cursor.next(this.config.idleMs);
          } catch (error) {
            stats.incomplete.push({ ...where, reached: position, reason: String(error) });
            break;
          }
          if (!got) {
            stats.incomplete.push({
              ...where,
              reached: position,
              reason: `no record for ${this.config.idleMs} ms (stream deleted or shortened)`,
            });
            break;
          }
          // The read starts at the chunk holding `from`: earlier records of that chunk come first.
          if (got.offset < position) continue;
          if (got.offset > position && !gapReported) {
            gapReported = true;
            stats.incomplete.push({ ...where, reached: position, reason: 'records removed from the stream (retention)' });
          }
          if (got.offset >= range.to) break;
          position = got.offset + 1n;
          const record = toRecord(range.topic, range.partition, got.message);
          if (!record) continue;
          stats.records++;
          yield { ...record, timestamp: timestampOf(got.message) };
        }
      } finally {
        await cursor.close();
      }
    }
  }

  /**
   * The group's committed offsets on every listed topic: each partition's offset queue, read and put back
   * under its peek queue (so a member taking the partition over at that moment still finds it).
   */
  async committedOffsets(groupId: string): Promise<CommittedOffset[]> {
    const topics = await this.listTopics();
    return this.#run(`reading the offsets of ${groupId}`, async (conn) => {
      const out: CommittedOffset[] = [];
      for (const topic of topics) {
        const count = await probePartitions(conn, topic);
        const offsets = await Promise.all(
          Array.from({ length: count }, (_, partition) => this.#committed(conn, groupId, topic, partition)),
        );
        offsets.forEach((offset, partition) => {
          if (offset !== undefined) out.push({ topic, partition, offset });
        });
      }
      return out;
    });
  }

  async close(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn) await (await conn.catch(() => undefined))?.close().catch(() => {});
  }

  async #committed(conn: ChannelModel, groupId: string, topic: string, partition: number): Promise<bigint | undefined> {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    try {
      // Passive: the inspector never creates a group's offset queue. A missing one closes this channel.
      await ch.checkQueue(rabbitNames.offset(groupId, topic, partition));
      return await peekOffset(conn, ch, { groupId, topic, partition });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    } finally {
      await ch.close().catch(() => {});
    }
  }

  get #timing() {
    return { ...this.config, maxMs: this.config.idleMs, prefetch: this.config.batchRecords };
  }

  #connection(): Promise<ChannelModel> {
    if (this.#conn) return this.#conn;
    const current = amqp.connect(this.config.url, { clientProperties: { connection_name: 'zeroloss-inspector' } }).then((conn) => {
      conn.on('error', () => {});
      // A closed connection is opened again by the next call.
      conn.on('close', () => {
        if (this.#conn === current) this.#conn = undefined;
      });
      return conn;
    });
    current.catch(() => {
      if (this.#conn === current) this.#conn = undefined;
    });
    this.#conn = current;
    return current;
  }

  async #run<T>(what: string, fn: (conn: ChannelModel) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.#connection());
    } catch (error) {
      throw rabbitError(error, what);
    }
  }
}

/** Its `zl-created-at`: the stream's append time is not delivered over AMQP 0-9-1 (see the class comment). */
function timestampOf(message: ConsumeMessage): number {
  const raw = message.properties.headers?.[HEADER.createdAt];
  const created = Date.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw ?? ''));
  if (Number.isFinite(created)) return created;
  return typeof message.properties.timestamp === 'number' ? message.properties.timestamp : 0;
}
