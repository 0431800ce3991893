import type { Producer } from '@platformatic/kafka';
import { partitionFor } from '../../core/partition-for.ts';
import { kafka } from './kafka-driver.ts';
import { z } from 'zod';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import { parseConfig } from '../../core/config.ts';
import type { PublishOutcome, Publisher } from '../../ports/transport.ts';
import { type KafkaClientConnection, type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';
import { kafkaSendError, writtenPartitions } from './kafka-errors.ts';

export const kafkaPublisherConfigSchema = z
  .object({
    brokers: z.array(z.string().min(1)).min(1),
    clientId: z.string().min(1).default('zeroloss-relay'),
    compression: z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'),
    /** Upper bound on one send, retries included (Kafka's delivery.timeout.ms). Keep it below the relay lease. */
    deliveryTimeoutMs: z.number().int().positive().default(30_000),
    requestTimeoutMs: z.number().int().positive().default(10_000),
    /**
     * How long the records of a topic the broker lacks or refuses fail at once, without asking the broker
     * again; after that one send of its own looks again.
     */
    topicRecheckMs: z.number().int().nonnegative().default(5_000),
  })
  .strict();

/** The producer settings, and how to connect (TLS, SASL: checked apart and kept out of `settings`). */
export type KafkaPublisherConfig = z.input<typeof kafkaPublisherConfigSchema> & Pick<KafkaConnectionOptions, 'tls' | 'sasl'>;

/** Failures of the connection, not of any record: no split per topic or per record can help. */
const SHARED_FAILURES = new Set(['ZL_TRANSPORT_UNAVAILABLE', 'ZL_KAFKA_AUTH', 'ZL_KAFKA_TLS']);

/**
 * Publisher over @platformatic/kafka with the durability profile (P6): acks=all and idempotence, which
 * the client refuses to weaken, and a bounded delivery time. Keys are hashed with the Java client's
 * murmur2 partitioner so a key lands where a Java producer would put it.
 */
export class KafkaPublisher implements Publisher {
  readonly #producer: Producer<string, Buffer, string, string>;
  readonly #config: z.output<typeof kafkaPublisherConfigSchema>;
  /** Topics found missing or refused, with the error their records get until `until`. */
  readonly #unavailable = new Map<string, { error: ZerolossError; until: number }>();

  constructor(config: KafkaPublisherConfig) {
    const { tls, sasl, ...settings } = config;
    this.#config = parseConfig(kafkaPublisherConfigSchema, settings, 'kafka publisher');
    const connection: KafkaClientConnection = kafkaClientConnection({ brokers: this.#config.brokers, tls, sasl }, 'kafka publisher');
    this.#producer = new kafka.Producer({
      clientId: this.#config.clientId,
      ...connection,
      idempotent: true,
      acks: kafka.ProduceAcks.ALL,
      compression: this.#config.compression,
      partitioner: kafka.compatibilityPartitioner,
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
    const deadline = Date.now() + this.#config.deliveryTimeoutMs;
    const outcomes: PublishOutcome[] = new Array(records.length);
    // One send for the batch; a topic that was unavailable a moment ago fails at once, and once it is due
    // for another look it goes in a send of its own, so looking (a missing topic's metadata lookup costs
    // the client's retries, about a second) never holds up the other topics.
    const sends = new Map<string, number[]>();
    const now = Date.now();
    records.forEach((record, i) => {
      const known = this.#unavailable.get(record.topic);
      if (known && known.until > now) {
        outcomes[i] = { ok: false, error: known.error, attempted: true };
        return;
      }
      pushTo(sends, known ? record.topic : '', i);
    });
    await this.#publishSends(records, [...sends.values()], outcomes, deadline);
    return outcomes;
  }

  /** Runs one send per group of record indexes, at once, and writes each record's outcome into `outcomes`. */
  async #publishSends(records: OutgoingRecord[], groups: number[][], outcomes: PublishOutcome[], deadline: number): Promise<void> {
    await Promise.all(
      groups.map(async (indexes) => {
        const result = await this.#publishSend(
          indexes.map((i) => records[i] as OutgoingRecord),
          deadline,
        );
        indexes.forEach((index, j) => {
          outcomes[index] = result[j] as PublishOutcome;
        });
      }),
    );
  }

  async #publishSend(records: OutgoingRecord[], deadline: number): Promise<PublishOutcome[]> {
    const topics = [...new Set(records.map((r) => r.topic))];
    try {
      const offsets = await this.#send(records, deadline);
      for (const topic of topics) this.#unavailable.delete(topic);
      return records.map((_r, i) => ({ ok: true, partition: offsets[i]?.partition, offset: offsets[i]?.offset }));
    } catch (error) {
      const failure = kafkaSendError(error, topics.length === 1 ? topics[0] : undefined);
      // The cluster is unreachable as a whole (down, timeout), or refuses this client's credentials or
      // certificate: every record shares the failure.
      if (SHARED_FAILURES.has(failure.code)) return records.map(() => ({ ok: false, error: failure, attempted: true }));
      const written = writtenPartitions(error);
      if (topics.length > 1) return this.#publishPerTopic(records, written, deadline);
      return this.#settle(records, failure, written, deadline);
    }
  }

  /**
   * After a failed send of several topics: the failure may belong to one topic (missing, not authorized),
   * so each topic's records not yet written get a send of their own, and a failure stops only its topic.
   */
  async #publishPerTopic(records: OutgoingRecord[], written: Map<string, bigint>, deadline: number): Promise<PublishOutcome[]> {
    const outcomes: PublishOutcome[] = new Array(records.length);
    const partitionOf = this.#partitionsOf();
    const counted = new Map<string, bigint>();
    const unwritten = new Map<string, number[]>();
    records.forEach((record, i) => {
      const position = writtenPosition(record, partitionOf(record), written, counted);
      if (position) outcomes[i] = { ok: true, ...position };
      else pushTo(unwritten, record.topic, i);
    });
    await this.#publishSends(records, [...unwritten.values()], outcomes, deadline);
    return outcomes;
  }

  /** After a failed send of one topic: what the broker wrote anyway is kept, and the failure goes to the rest. */
  async #settle(
    records: OutgoingRecord[],
    failure: ZerolossError,
    written: Map<string, bigint>,
    deadline: number,
  ): Promise<PublishOutcome[]> {
    if (failure.code === 'ZL_TOPIC_UNAVAILABLE') {
      const topic = records[0]?.topic as string;
      this.#unavailable.set(topic, { error: failure, until: Date.now() + this.#config.topicRecheckMs });
      return records.map(() => ({ ok: false, error: failure, attempted: true }));
    }
    // A permanent rejection fails the whole send; isolate the culprit record by record, leaving alone the
    // partitions the broker accepted anyway, so isolating adds no duplicates.
    if (!failure.retryable && records.length > 1) return this.#publishOneByOne(records, this.#partitionsOf(), written, deadline);
    // A partition without a leader, or a timeout on one broker's partitions: only the records of the
    // partitions the broker did not write failed. A key lives in one partition, so its order holds.
    const partitionOf = this.#partitionsOf();
    const counted = new Map<string, bigint>();
    return records.map((record) => {
      const position = writtenPosition(record, partitionOf(record), written, counted);
      return position ? { ok: true, ...position } : { ok: false, error: failure, attempted: true };
    });
  }

  async #publishOneByOne(
    records: OutgoingRecord[],
    partitionOf: (record: OutgoingRecord) => number | undefined,
    written: Map<string, bigint>,
    deadline: number,
  ): Promise<PublishOutcome[]> {
    const outcomes: PublishOutcome[] = [];
    const blockedKeys = new Map<string, ZerolossError>();
    const counted = new Map<string, bigint>();
    for (const record of records) {
      const position = writtenPosition(record, partitionOf(record), written, counted);
      if (position) {
        outcomes.push({ ok: true, ...position });
        continue;
      }
      const blockKey = `${record.topic}\u0000${record.key}`;
      const blocked = blockedKeys.get(blockKey);
      if (blocked) {
        outcomes.push({ ok: false, error: blocked, attempted: false });
        continue;
      }
      try {
        const [offset] = await this.#send([record], deadline);
        outcomes.push({ ok: true, partition: offset?.partition, offset: offset?.offset });
      } catch (error) {
        const failure = kafkaSendError(error, record.topic);
        blockedKeys.set(blockKey, failure);
        outcomes.push({ ok: false, error: failure, attempted: true });
      }
    }
    return outcomes;
  }

  /** Sends and returns, per record, its partition and offset where the broker reported them. */
  async #send(records: OutgoingRecord[], deadline: number): Promise<Array<{ partition: number; offset: bigint } | undefined>> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `no broker answer within ${this.#config.deliveryTimeoutMs} ms`, {
              retryable: true,
            }),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      const result = await Promise.race([
        this.#producer.send({
          messages: records.map((r) => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })),
        }),
        expired,
      ]);
      return assignOffsets(records, this.#partitionsOf(), result.offsets ?? []);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The partition each record went to: the producer's own partitioner over the partition counts it has cached. */
  #partitionsOf(): (record: OutgoingRecord) => number | undefined {
    const topics = this.#producer.currentMetadata?.topics;
    return (record) => {
      const count = topics?.get(record.topic)?.partitionsCount ?? 0;
      return count === 0 ? undefined : partitionFor(record.key, count);
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
  const counted = new Map<string, bigint>();
  return records.map((record) => writtenPosition(record, partitionOf(record), base, counted));
}

/**
 * Where `record` was written when its partition is among `written` (partition → base offset), counting
 * the records of each partition in array order in `counted`; undefined when its partition was not written.
 */
function writtenPosition(
  record: OutgoingRecord,
  partition: number | undefined,
  written: Map<string, bigint>,
  counted: Map<string, bigint>,
): { partition: number; offset: bigint } | undefined {
  if (partition === undefined) return undefined;
  const slot = `${record.topic}\u0000${partition}`;
  const first = written.get(slot);
  if (first === undefined) return undefined;
  const n = counted.get(slot) ?? 0n;
  counted.set(slot, n + 1n);
  return { partition, offset: first + n };
}

function pushTo(groups: Map<string, number[]>, name: string, index: number): void {
  const group = groups.get(name);
  if (group) group.push(index);
  else groups.set(name, [index]);
}
