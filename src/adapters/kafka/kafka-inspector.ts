import { randomBytes } from 'node:crypto';
import type { Admin, FetchIsolationLevelValue, Message } from '@platformatic/kafka';
import { kafka } from './kafka-driver.ts';
import type {
  BrokerInspector,
  BrokerRecord,
  CommittedOffset,
  PartitionRange,
  PartitionWatermarks,
  ReadStats,
} from '../../ports/broker-inspector.ts';
import { createAdmin } from './kafka-admin.ts';
import { type KafkaClientConnection, type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';

export interface KafkaInspectorOptions extends KafkaConnectionOptions {
  clientId?: string;
  /** A range whose next record has not arrived for this long is given up and reported incomplete. */
  idleMs?: number;
  /** Bytes per fetch while reading ranges; bounds memory together with the stream's record buffer. */
  fetchMaxBytes?: number;
}

const EARLIEST = -2n;
const LATEST = -1n;

/**
 * Operations' read-only view of Kafka: watermarks and time lookups through ListOffsets, group commits
 * through OffsetFetch, and ranges read by a throwaway consumer that joins its own empty group, reads from
 * explicit offsets and never commits.
 */
export class KafkaInspector implements BrokerInspector {
  readonly #admin: Admin;
  readonly #options: Required<Omit<KafkaInspectorOptions, 'tls' | 'sasl'>>;
  /** Brokers, TLS and SASL as the client takes them; private, so no echo of the options shows a secret. */
  readonly #connection: KafkaClientConnection;

  constructor(options: KafkaInspectorOptions) {
    const { tls, sasl, ...rest } = options;
    this.#options = { clientId: 'zeroloss-inspector', idleMs: 10_000, fetchMaxBytes: 8 * 1_048_576, ...rest };
    this.#connection = kafkaClientConnection({ brokers: rest.brokers, tls, sasl }, 'kafka inspector');
    this.#admin = createAdmin({ brokers: rest.brokers, tls, sasl }, this.#options.clientId);
  }

  /** The admin client, for the backlog tools that change topics. */
  get admin(): Admin {
    return this.#admin;
  }

  async listTopics(): Promise<string[]> {
    return this.#admin.listTopics();
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[] | undefined> {
    const count = await this.#partitionCount(topic);
    if (count === undefined) return undefined;
    return this.#watermarks(topic, count, kafka.FetchIsolationLevels.READ_UNCOMMITTED);
  }

  async offsetsForTime(topic: string, atMs: number): Promise<Array<{ partition: number; offset: bigint }>> {
    const count = await this.#partitionCount(topic);
    if (count === undefined) return [];
    const marks = await this.#watermarks(topic, count, kafka.FetchIsolationLevels.READ_UNCOMMITTED);
    const found = await this.#listOffsets(topic, count, BigInt(Math.max(0, Math.floor(atMs))), kafka.FetchIsolationLevels.READ_UNCOMMITTED);
    // -1: no record at or after that time, so the position is the end of the partition.
    return marks.map((m) => {
      const offset = found.get(m.partition) ?? -1n;
      return { partition: m.partition, offset: offset < 0n ? m.high : offset };
    });
  }

  async committedOffsets(groupId: string): Promise<CommittedOffset[]> {
    const [group] = await this.#admin.listConsumerGroupOffsets({ groups: [groupId] });
    const out: CommittedOffset[] = [];
    for (const topic of group?.topics ?? []) {
      for (const p of topic.partitions) {
        if (p.committedOffset >= 0n) out.push({ topic: topic.name, partition: p.partitionIndex, offset: p.committedOffset });
      }
    }
    return out;
  }

  async *read(ranges: PartitionRange[], stats: ReadStats = { records: 0, incomplete: [] }): AsyncIterable<BrokerRecord> {
    const remaining = new Map<string, PartitionRange & { reached: bigint }>();
    for (const topic of new Set(ranges.map((r) => r.topic))) {
      const count = await this.#partitionCount(topic);
      if (count === undefined) continue;
      // Read committed, like the consumers: the end is the last stable offset, and what lies below the low
      // watermark is gone (reading it would only make the broker reset the position).
      const marks = new Map((await this.#watermarks(topic, count, kafka.FetchIsolationLevels.READ_COMMITTED)).map((m) => [m.partition, m]));
      for (const r of ranges.filter((x) => x.topic === topic)) {
        const m = marks.get(r.partition);
        if (!m) continue;
        const from = bigMax(r.from, m.low);
        const to = bigMin(r.to, m.high);
        if (from < to) remaining.set(`${topic}\u0000${r.partition}`, { topic, partition: r.partition, from, to, reached: from });
      }
    }
    if (remaining.size === 0) return;

    const consumer = new kafka.Consumer<string, Buffer, string, string>({
      clientId: this.#options.clientId,
      groupId: `zeroloss-inspect-${randomBytes(6).toString('hex')}`,
      ...this.#connection,
      autocommit: false,
      maxWaitTime: 500,
      maxBytes: this.#options.fetchMaxBytes,
      deserializers: {
        key: (b?: Buffer) => b?.toString('utf8') ?? '',
        headerKey: (b?: Buffer) => b?.toString('utf8') ?? '',
        headerValue: (b?: Buffer) => b?.toString('utf8') ?? '',
      },
    });
    const stream = await consumer.consume({
      topics: [...new Set([...remaining.values()].map((r) => r.topic))],
      mode: 'manual',
      offsets: [...remaining.values()].map((r) => ({ topic: r.topic, partition: r.partition, offset: r.from })),
      autocommit: false,
      highWaterMark: 256,
    });
    const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Message<string, Buffer, string, string>>;
    try {
      while (remaining.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<'idle'>((resolve) => {
          timer = setTimeout(() => resolve('idle'), this.#options.idleMs);
        });
        const pending = iterator.next();
        // Losing the race to `idle` leaves this promise behind; closing the stream may reject it.
        pending.catch(() => {});
        const next = await Promise.race([pending, idle]);
        clearTimeout(timer);
        if (next === 'idle' || next.done) {
          const reason = next === 'idle' ? `no record arrived for ${this.#options.idleMs} ms` : 'the stream ended';
          for (const r of remaining.values()) {
            stats.incomplete.push({ topic: r.topic, partition: r.partition, reached: r.reached, to: r.to, reason });
          }
          break;
        }
        const m = next.value;
        const key = `${m.topic}\u0000${m.partition}`;
        const range = remaining.get(key);
        if (!range || m.offset < range.from) continue;
        if (m.offset >= range.to) {
          remaining.delete(key);
          continue;
        }
        range.reached = m.offset + 1n;
        if (range.reached >= range.to) remaining.delete(key);
        stats.records++;
        yield {
          topic: m.topic,
          partition: m.partition,
          offset: m.offset,
          timestamp: Number(m.timestamp),
          key: m.key ?? '',
          value: m.value ?? Buffer.alloc(0),
          headers: Object.fromEntries(m.headers),
        };
      }
    } finally {
      await stream.close().catch(() => {});
      await consumer.close(true).catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.#admin.close();
  }

  async #partitionCount(topic: string): Promise<number | undefined> {
    if (!(await this.#admin.listTopics()).includes(topic)) return undefined;
    const metadata = await this.#admin.metadata({ topics: [topic], forceUpdate: true });
    return metadata.topics.get(topic)?.partitionsCount;
  }

  async #watermarks(topic: string, count: number, isolationLevel: FetchIsolationLevelValue): Promise<PartitionWatermarks[]> {
    const low = await this.#listOffsets(topic, count, EARLIEST, isolationLevel);
    const high = await this.#listOffsets(topic, count, LATEST, isolationLevel);
    return Array.from({ length: count }, (_, partition) => ({
      partition,
      low: low.get(partition) ?? 0n,
      high: high.get(partition) ?? 0n,
    }));
  }

  async #listOffsets(
    topic: string,
    count: number,
    timestamp: bigint,
    isolationLevel: FetchIsolationLevelValue,
  ): Promise<Map<number, bigint>> {
    const result = await this.#admin.listOffsets({
      topics: [{ name: topic, partitions: Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }],
      isolationLevel,
    });
    return new Map((result[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
  }
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
