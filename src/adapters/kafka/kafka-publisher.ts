import { compatibilityPartitioner, Producer, ProduceAcks } from '@platformatic/kafka';
import { z } from 'zod';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import { parseConfig } from '../../core/config.ts';
import type { PublishOutcome, Publisher } from '../../ports/transport.ts';
import { kafkaSendError, writtenPartitions } from './kafka-errors.ts';

export const kafkaPublisherConfigSchema = z
  .object({
    brokers: z.array(z.string().min(1)).min(1),
    clientId: z.string().min(1).default('zeroloss-relay'),
    compression: z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'),
    /** Upper bound on one send, retries included (Kafka's delivery.timeout.ms). Keep it below the relay lease. */
    deliveryTimeoutMs: z.number().int().positive().default(30_000),
    requestTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

export type KafkaPublisherConfig = z.input<typeof kafkaPublisherConfigSchema>;

/**
 * Publisher over @platformatic/kafka with the durability profile (P6): acks=all and idempotence, which
 * the client refuses to weaken, and a bounded delivery time. Keys are hashed with the Java client's
 * murmur2 partitioner so a key lands where a Java producer would put it.
 */
export class KafkaPublisher implements Publisher {
  readonly #producer: Producer<string, Buffer, string, string>;
  readonly #config: z.output<typeof kafkaPublisherConfigSchema>;

  constructor(config: KafkaPublisherConfig) {
    this.#config = parseConfig(kafkaPublisherConfigSchema, config, 'kafka publisher');
    this.#producer = new Producer({
      clientId: this.#config.clientId,
      bootstrapBrokers: this.#config.brokers,
      idempotent: true,
      acks: ProduceAcks.ALL,
      compression: this.#config.compression,
      partitioner: compatibilityPartitioner,
      timeout: this.#config.requestTimeoutMs,
      retries: 5,
      retryDelay: 200,
      serializers: {
        key: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
        headerKey: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
        headerValue: (value?: string) => (value === undefined ? undefined : Buffer.from(value, 'utf8')),
      },
    });
  }

  get settings() {
    return { acks: 'all', idempotent: true, ...this.#config };
  }

  async publish(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    if (records.length === 0) return [];
    try {
      const offsets = await this.#send(records);
      return records.map((_r, i) => ({ ok: true, partition: offsets[i]?.partition, offset: offsets[i]?.offset }));
    } catch (error) {
      const failure = kafkaSendError(error);
      if (records.length === 1 || failure.retryable) {
        // The cluster is unhappy as a whole (down, no leader, timeout): every record shares the failure.
        return records.map(() => ({ ok: false, error: failure, attempted: true }));
      }
      // A permanent rejection fails the whole send; isolate the culprit record by record, but leave alone
      // the partitions the broker accepted anyway, so isolating adds no duplicates.
      return this.#publishOneByOne(records, await this.#partitionsOf(records), writtenPartitions(error));
    }
  }

  async #publishOneByOne(
    records: OutgoingRecord[],
    partitionOf: (record: OutgoingRecord) => number | undefined,
    written: Map<string, bigint>,
  ): Promise<PublishOutcome[]> {
    const outcomes: PublishOutcome[] = [];
    const blockedKeys = new Map<string, ZerolossError>();
    const seen = new Map<string, bigint>();
    for (const record of records) {
      const partition = partitionOf(record);
      const slot = `${record.topic}\u0000${partition}`;
      const base = partition === undefined ? undefined : written.get(slot);
      if (base !== undefined) {
        const n = seen.get(slot) ?? 0n;
        seen.set(slot, n + 1n);
        outcomes.push({ ok: true, partition, offset: base + n });
        continue;
      }
      const blockKey = `${record.topic}\u0000${record.key}`;
      const blocked = blockedKeys.get(blockKey);
      if (blocked) {
        outcomes.push({ ok: false, error: blocked, attempted: false });
        continue;
      }
      try {
        const [offset] = await this.#send([record]);
        outcomes.push({ ok: true, partition: offset?.partition, offset: offset?.offset });
      } catch (error) {
        const failure = kafkaSendError(error);
        blockedKeys.set(blockKey, failure);
        outcomes.push({ ok: false, error: failure, attempted: true });
      }
    }
    return outcomes;
  }

  /** Sends and returns, per record, its partition and offset where the broker reported them. */
  async #send(records: OutgoingRecord[]): Promise<Array<{ partition: number; offset: bigint } | undefined>> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `no broker answer within ${this.#config.deliveryTimeoutMs} ms`, {
              retryable: true,
            }),
          ),
        this.#config.deliveryTimeoutMs,
      );
    });
    try {
      const result = await Promise.race([
        this.#producer.send({
          messages: records.map((r) => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })),
        }),
        deadline,
      ]);
      return assignOffsets(records, await this.#partitionsOf(records), result.offsets ?? []);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The partition each record went to: the producer's own partitioner over the cached partition counts. */
  async #partitionsOf(records: OutgoingRecord[]): Promise<(record: OutgoingRecord) => number | undefined> {
    const topics = [...new Set(records.map((r) => r.topic))];
    const metadata = await this.#producer.metadata({ topics }).catch(() => undefined);
    const counts = new Map(topics.map((t) => [t, metadata?.topics.get(t)?.partitionsCount ?? 0]));
    return (record) => {
      const count = counts.get(record.topic) ?? 0;
      return count === 0 ? undefined : compatibilityPartitioner(undefined as never, Buffer.from(record.key, 'utf8')) % count;
    };
  }

  async close(): Promise<void> {
    await this.#producer.close(true);
  }
}

/**
 * The produce response gives each partition's base offset; records of one partition were appended in
 * array order, so the n-th record for a partition sits at base + n.
 */
function assignOffsets(
  records: OutgoingRecord[],
  partitionOf: (record: OutgoingRecord) => number | undefined,
  offsets: Array<{ topic: string; partition: number; offset: bigint }>,
): Array<{ partition: number; offset: bigint } | undefined> {
  const base = new Map(offsets.map((o) => [`${o.topic}\u0000${o.partition}`, o.offset]));
  const seen = new Map<string, bigint>();
  return records.map((record) => {
    const partition = partitionOf(record);
    if (partition === undefined) return undefined;
    const slot = `${record.topic}\u0000${partition}`;
    const first = base.get(slot);
    if (first === undefined) return undefined;
    const n = seen.get(slot) ?? 0n;
    seen.set(slot, n + 1n);
    return { partition, offset: first + n };
  });
}
