import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { Consumer as KafkaConsumer, Message, Producer } from '@platformatic/kafka';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { type Envelope, HEADER, type IncomingRecord, type OutgoingRecord, readEnvelope } from '../../core/envelope.ts';
import { classifyError, errorSummary, ZerolossError } from '../../core/errors.ts';
import { DLQ_HEADER, deadLetterTopic } from '../../core/retry-topics.ts';
import { type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';
import { kafka } from './kafka-driver.ts';
import { kafkaClientError } from './kafka-errors.ts';
import { KafkaSubscriber, type KafkaSubscription } from './kafka-subscriber.ts';

/**
 * Kafka transactions: consume-transform-produce where the output records and the input offsets commit in
 * one Kafka transaction, so a downstream consumer reading with read_committed (the KafkaSubscriber default)
 * sees each output exactly once, and an aborted attempt never. This is exactly-once inside Kafka only: a
 * side effect outside Kafka (a DB write, an HTTP call) made in `transform` is not covered, and is what the
 * inbox consumer is for (with `offsetStore: 'database'` when the positions must live with the effects).
 * Its dead letters go to `<topic>.dlq` inside the transaction; having no database, it writes no
 * dead_letter row.
 */

export const transactionalProcessorConfigSchema = z
  .object({
    brokers: z.array(z.string().min(1)).min(1),
    groupId: z.string().min(1),
    topics: z.array(z.string().min(1)).min(1),
    /** Unique per processor instance; a restarted instance with the same id fences its predecessor's zombie. */
    transactionalId: z.string().min(1),
    clientId: z.string().min(1).default('zeroloss-transactional'),
    /** Input records per Kafka transaction. */
    maxBatch: z.number().int().positive().default(100),
    /** Outputs are sent in groups of this many while the transaction is open (bounds memory). */
    flushEvery: z.number().int().positive().default(50),
    /** Failed transactions caused by one record before it goes to `<topic>.dlq` (inside the transaction). */
    maxAttempts: z.number().int().positive().default(3),
    retryDelayMs: z.number().int().min(0).default(200),
    maxPayloadBytes: z.number().int().positive().default(1_048_576),
    /** How long a revoke waits for the transaction in flight. */
    revokeTimeoutMs: z.number().int().positive().default(15_000),
  })
  .strict();

/** The processor's settings, and how to connect (TLS, SASL: checked apart and kept out of `config`). */
export type TransactionalProcessorConfig = z.input<typeof transactionalProcessorConfigSchema> &
  Pick<KafkaConnectionOptions, 'tls' | 'sasl'>;

export interface TransformInput {
  record: IncomingRecord;
  envelope: Envelope;
  /** JSON payload, or the bytes for `application/octet-stream`. */
  payload: unknown;
}

/** Maps one input message to the records to produce; throwing a PermanentError dead-letters the input. */
export type Transform = (input: TransformInput) => Promise<OutgoingRecord[]> | OutgoingRecord[];

export interface TransactionalProcessorEvents {
  committed: [{ records: number; outputs: number; deadLettered: number }];
  aborted: [{ records: number; error: string }];
  error: [Error];
}

type Queued = { record: IncomingRecord; generation: number };

/** Consume-transform-produce in Kafka transactions. Records of a partition are handled in offset order. */
export class KafkaTransactionalProcessor extends EventEmitter<TransactionalProcessorEvents> {
  readonly config: Readonly<z.output<typeof transactionalProcessorConfigSchema>>;
  readonly #subscriber: KafkaSubscriber;
  readonly #transform: Transform;
  readonly #producer: Producer<string, Buffer, string, string>;
  readonly #failures = new Map<string, number>();
  #subscription: KafkaSubscription | undefined;
  #queue: Queued[] = [];
  #wake: (() => void) | undefined;
  #inFlight: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #running = false;

  constructor(options: { config: TransactionalProcessorConfig; transform: Transform; subscriber?: KafkaSubscriber }) {
    super();
    const { tls, sasl, ...settings } = options.config;
    this.config = parseConfig(transactionalProcessorConfigSchema, settings, 'transactional processor');
    this.#transform = options.transform;
    this.#subscriber =
      options.subscriber ??
      new KafkaSubscriber({ brokers: this.config.brokers, clientId: this.config.clientId, isolation: 'read_committed', tls, sasl });
    this.#producer = new kafka.Producer({
      clientId: this.config.clientId,
      ...kafkaClientConnection({ brokers: this.config.brokers, tls, sasl }, 'transactional processor'),
      transactionalId: this.config.transactionalId,
      // InitProducerId must say "no producer yet" (-1/-1); the client's default 0/0 is refused as fenced once
      // the transactional id has history, i.e. on every restart of the same instance.
      producerId: -1n,
      producerEpoch: -1,
      idempotent: true,
      acks: kafka.ProduceAcks.ALL,
      partitioner: kafka.compatibilityPartitioner,
      serializers: {
        key: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
        headerKey: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
        headerValue: (value?: string) => (value === undefined ? undefined : Buffer.from(value, 'utf8')),
      },
    });
    this.on('error', () => {});
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#subscription = await this.#subscriber.subscribe({
      groupId: this.config.groupId,
      topics: this.config.topics,
      onRecords: (batch) => {
        const generation = this.#subscription?.generation ?? 0;
        for (const record of batch.records) this.#queue.push({ record, generation });
        if (this.#queue.length > this.config.maxBatch * 10) this.#subscription?.pause();
        this.#wake?.();
      },
      // A transaction in flight commits offsets as the current member: let it finish before the partitions move.
      onRevoke: async () => {
        await Promise.race([this.#inFlight, delay(this.config.revokeTimeoutMs)]);
      },
    });
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    await this.#subscription?.close();
    await this.#producer.close();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const subscription = this.#subscription as KafkaSubscription;
      const generation = subscription.generation;
      // Records handed over before the last revoke, join or rewind are stale: they will be read again.
      this.#queue = this.#queue.filter((q) => q.generation === generation);
      // Resumed here, not only after taking a batch: an abort or a rebalance may empty the queue of a
      // paused subscription, and nothing would ever fill it again.
      if (this.#queue.length < this.config.maxBatch * 5) subscription.resume();
      if (this.#queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          setTimeout(resolve, 200).unref();
        });
        this.#wake = undefined;
        continue;
      }
      const batch = this.#queue.splice(0, this.config.maxBatch).map((q) => q.record);
      this.#inFlight = this.#transaction(subscription, batch).catch(async (error: unknown) => {
        this.emit('aborted', { records: batch.length, error: errorSummary(error) });
        this.emit('error', kafkaClientError(error));
        // The offsets did not move: read the records again from the committed position.
        this.#queue = [];
        await subscription.rewind().catch((e: unknown) => this.emit('error', e as Error));
        await delay(this.config.retryDelayMs);
      });
      await this.#inFlight;
      this.#inFlight = undefined;
    }
  }

  async #transaction(subscription: KafkaSubscription, batch: IncomingRecord[]): Promise<void> {
    const transaction = await this.#producer.beginTransaction().catch(async (error: unknown) => {
      // A failed begin (e.g. CONCURRENT_TRANSACTIONS while a predecessor's transaction completes) leaves the
      // client believing a transaction is open; cancel that local state so the next attempt can begin.
      await this.#producer.transaction?.cancel().catch(() => {});
      throw error;
    });
    let outputs: OutgoingRecord[] = [];
    let sent = 0;
    let deadLettered = 0;
    const flush = async () => {
      if (outputs.length === 0) return;
      await transaction.send({ messages: outputs.map((o) => ({ topic: o.topic, key: o.key, value: o.value, headers: o.headers })) });
      sent += outputs.length;
      outputs = [];
    };
    try {
      for (const record of batch) {
        const id = `${record.topic}\u0000${record.partition}\u0000${record.offset}`;
        try {
          outputs.push(...(await this.#transform(decode(record, this.config.maxPayloadBytes))));
        } catch (thrown) {
          const error = classifyError(thrown);
          const failures = (this.#failures.get(id) ?? 0) + 1;
          if (error.retryable && failures < this.config.maxAttempts) {
            this.#failures.set(id, failures);
            throw error;
          }
          // Out of attempts, or never going to work: the input goes to its dead-letter topic in this very transaction.
          outputs.push(deadLetter(record, error, failures, this.config.groupId));
          deadLettered++;
        }
        if (outputs.length >= this.config.flushEvery) await flush();
      }
      await flush();
      await transaction.addConsumer({ groupId: this.config.groupId } as KafkaConsumer<string, Buffer, string, string>);
      const group = subscription.groupMetadata();
      const last = new Map<string, IncomingRecord>();
      for (const record of batch) last.set(`${record.topic}\u0000${record.partition}`, record);
      for (const record of last.values()) {
        // Commits record.offset + 1 under the current generation: a member that lost the partition is fenced.
        const position = { topic: record.topic, partition: record.partition, offset: record.offset, metadata: { consumer: group } };
        await transaction.addOffset(position as unknown as Message<string, Buffer, string, string>);
      }
      await transaction.commit();
    } catch (error) {
      // Everything this transaction sent is discarded for read_committed readers; the offsets did not move.
      await transaction.abort().catch(async () => {
        // Not even an abort got through: drop the local state; the coordinator aborts it on timeout or fencing.
        await transaction.cancel().catch(() => {});
      });
      throw error;
    }
    for (const record of batch) this.#failures.delete(`${record.topic}\u0000${record.partition}\u0000${record.offset}`);
    this.emit('committed', { records: batch.length, outputs: sent - deadLettered, deadLettered });
  }
}

function decode(record: IncomingRecord, maxPayloadBytes: number): TransformInput {
  if (record.value.length === 0) throw new ZerolossError('ZL_INVALID_PAYLOAD', 'record value is null or empty');
  if (record.value.length > maxPayloadBytes) {
    throw new ZerolossError('ZL_PAYLOAD_TOO_LARGE', `payload is ${record.value.length} bytes, over the limit of ${maxPayloadBytes}`);
  }
  const envelope = readEnvelope(record.key, record.headers);
  if (record.headers[HEADER.contentType] === 'application/octet-stream') return { record, envelope, payload: record.value };
  try {
    return { record, envelope, payload: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(record.value)) };
  } catch (cause) {
    throw new ZerolossError('ZL_INVALID_PAYLOAD', `payload is not valid UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
}

function deadLetter(record: IncomingRecord, error: ZerolossError, attempts: number, groupId: string): OutgoingRecord {
  const now = new Date().toISOString();
  return {
    topic: deadLetterTopic(record.topic),
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      [DLQ_HEADER.error]: errorSummary(error),
      [DLQ_HEADER.errorCode]: error.code,
      [DLQ_HEADER.originalTopic]: record.topic,
      [DLQ_HEADER.originalPartition]: String(record.partition),
      [DLQ_HEADER.originalOffset]: record.offset.toString(),
      [DLQ_HEADER.attempts]: String(attempts),
      [DLQ_HEADER.firstFailureAt]: now,
      [DLQ_HEADER.lastFailureAt]: now,
      [DLQ_HEADER.group]: groupId,
    },
  };
}
