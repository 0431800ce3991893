import { HookEmitter } from '../../core/hook-emitter.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Admin, API, Callback, Consumer as KafkaConsumer, Message, Producer, ProducerOptions } from '@platformatic/kafka';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { type Envelope, HEADER, type IncomingRecord, type OutgoingRecord, readEnvelope } from '../../core/envelope.ts';
import { classifyError, errorSummary, ZerolossError } from '../../core/errors.ts';
import { DLQ_HEADER, deadLetterTopic } from '../../core/retry-topics.ts';
import { within } from '../../core/time-bounds.ts';
import { createAdmin } from './kafka-admin.ts';
import { type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';
import { kafka } from './kafka-driver.ts';
import { findApiIds, kafkaClientError, producerFencedError } from './kafka-errors.ts';
import { type GroupMetadata, KafkaSubscriber, type KafkaSubscription } from './kafka-subscriber.ts';

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
    /**
     * How long the transaction coordinator lets a transaction stay open before it aborts it (Kafka's
     * `transaction.timeout.ms`, 60 s by default in Kafka's Java producer, as here). It bounds one batch:
     * reading, transforming and sending `maxBatch` records. The broker refuses a value above its
     * `transaction.max.timeout.ms` (15 min by default) with INVALID_TRANSACTION_TIMEOUT. Longer is not
     * free: a processor that dies mid-transaction leaves it open that long (plus the coordinator's check
     * interval, 10 s by default); read_committed readers of its outputs wait for it, and so does the member
     * taking its partitions over once its offsets were added, unless it restarts with its `transactionalId` first.
     */
    transactionTimeoutMs: z.number().int().positive().max(2_147_483_647).default(60_000),
    /**
     * A transaction not settled after this long is given up: a broker restart can leave one of the
     * client's requests unanswered for good. The producer is then replaced, which aborts the transaction
     * at the coordinator (or completes its commit, if that was written), and the records are read again.
     * Shorter than `transactionTimeoutMs` by default: the give-up ends a stuck transaction at once (the
     * new producer's InitProducerId aborts it), where the coordinator would hold it open for its whole
     * timeout. Longer works too: the coordinator aborts first, the next send or commit fails, and the
     * producer is replaced the same way; a batch then gets the shorter of the two.
     */
    stuckTransactionMs: z.number().int().positive().default(30_000),
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
export class KafkaTransactionalProcessor extends HookEmitter<TransactionalProcessorEvents> {
  readonly config: Readonly<z.output<typeof transactionalProcessorConfigSchema>>;
  readonly #subscriber: KafkaSubscriber;
  readonly #transform: Transform;
  readonly #newProducer: () => Producer<string, Buffer, string, string>;
  readonly #admin: Admin;
  #producer: Producer<string, Buffer, string, string>;
  readonly #failures = new Map<string, number>();
  #subscription: KafkaSubscription | undefined;
  #queue: Queued[] = [];
  /** Per partition, the offset after the last record queued in `#handedGeneration`. */
  readonly #handed = new Map<string, bigint>();
  #handedGeneration = -1;
  #wake: (() => void) | undefined;
  #inFlight: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #running = false;
  #stopped = false;

  constructor(options: { config: TransactionalProcessorConfig; transform: Transform; subscriber?: KafkaSubscriber }) {
    super();
    const { tls, sasl, ...settings } = options.config;
    this.config = parseConfig(transactionalProcessorConfigSchema, settings, 'transactional processor');
    this.#transform = options.transform;
    this.#subscriber =
      options.subscriber ??
      new KafkaSubscriber({ brokers: this.config.brokers, clientId: this.config.clientId, isolation: 'read_committed', tls, sasl });
    const connection = { brokers: this.config.brokers, tls, sasl };
    this.#admin = createAdmin(connection, this.config.clientId);
    this.#newProducer = () =>
      new TransactionalProducer(this.config.transactionTimeoutMs, {
        clientId: this.config.clientId,
        ...kafkaClientConnection(connection, 'transactional processor'),
        transactionalId: this.config.transactionalId,
        // InitProducerId must say "no producer yet" (-1/-1); the client's default 0/0 is refused as fenced once
        // the transactional id has history, i.e. on every restart of the same instance.
        producerId: -1n,
        producerEpoch: -1,
        idempotent: true,
        acks: kafka.ProduceAcks.ALL,
        // The first send of a transaction often meets CONCURRENT_TRANSACTIONS while the coordinator still
        // writes the previous one's markers (milliseconds); at the client's flat 1 s retry delay that cost
        // about half the transactions a second. Retried quickly instead (as Kafka's Java client does), the
        // other errors as before.
        retries: 10,
        retryDelay: (_client: unknown, _operation: string, attempt: number, _retries: number, error: Error) =>
          findApiIds(error).includes('CONCURRENT_TRANSACTIONS') ? Math.min(20 * 2 ** (attempt - 1), 500) : 1_000,
        partitioner: kafka.compatibilityPartitioner,
        serializers: {
          key: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
          headerKey: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
          headerValue: (value?: string) => (value === undefined ? undefined : Buffer.from(value, 'utf8')),
        },
      });
    this.#producer = this.#newProducer();
    this.on('error', () => {});
  }

  async start(): Promise<void> {
    this.#running = true;
    this.#subscription = await this.#subscriber.subscribe({
      groupId: this.config.groupId,
      topics: this.config.topics,
      onRecords: (batch) => {
        const generation = this.#subscription?.generation ?? 0;
        if (generation !== this.#handedGeneration) {
          this.#handed.clear();
          this.#handedGeneration = generation;
        }
        const partition = `${batch.topic}\u0000${batch.partition}`;
        for (const record of batch.records) {
          // A stream that failed is reopened from the committed offsets within the same generation, so
          // records already queued (or in the open transaction) come again: each would get a second output.
          const next = this.#handed.get(partition);
          if (next !== undefined && record.offset < next) continue;
          this.#handed.set(partition, record.offset + 1n);
          this.#queue.push({ record, generation });
        }
        if (this.#queue.length > this.config.maxBatch * 10) this.#subscription?.pause();
        this.#wake?.();
      },
      // A transaction in flight commits offsets as the current member: let it finish before the partitions move.
      onRevoke: async () => {
        await Promise.race([this.#inFlight, delay(this.config.revokeTimeoutMs)]);
      },
      // Where each partition starts, after a join or a rewind: the group's committed offsets as the broker
      // gives them once no transaction that commits offsets of the group is still completing. The client's
      // own fetch does not wait for those, and would restart from before records such a transaction
      // consumed (its outputs already on their way): their outputs would be produced twice.
      startOffsets: (partitions) => this.#stableOffsets(partitions),
    });
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    await this.#subscription?.close();
    // A producer replaced while stopping may be closed already.
    await this.#producer.close().catch(() => {});
    await this.#admin.close();
  }

  /** Committed offsets of the assigned partitions; UNSTABLE_OFFSET_COMMIT (retryable) while a transaction completes. */
  async #stableOffsets(
    partitions: Array<{ topic: string; partition: number }>,
  ): Promise<Array<{ topic: string; partition: number; offset: bigint }>> {
    const byTopic = new Map<string, number[]>();
    for (const p of partitions) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition]);
    const [group] = await this.#admin.listConsumerGroupOffsets({
      groups: [{ groupId: this.config.groupId, topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })) }],
      requireStable: true,
    });
    return (group?.topics ?? []).flatMap((t) =>
      t.partitions
        .filter((p) => p.committedOffset >= 0n)
        .map((p) => ({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset })),
    );
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
      // The membership the records were handed over under, taken now: the offsets are committed under it, so
      // the coordinator refuses them once the group has moved on. Taken at commit time instead, a transaction
      // that outlasted the revoke (a slow broker) would commit under the new generation, offsets of
      // partitions now read by another member, whose outputs would then be produced twice.
      const owner = { generation, group: subscription.groupMetadata() };
      this.#inFlight = within(this.#transaction(subscription, owner, batch), this.config.stuckTransactionMs, 'Kafka transaction').catch(
        async (error: unknown) => {
          const cause = error instanceof CleanAbort ? error.error : error;
          this.emit('aborted', { records: batch.length, error: errorSummary(cause) });
          if (error instanceof ZerolossError && error.code === 'ZL_PRODUCER_FENCED') {
            // A newer producer with our transactional id exists: this instance is the zombie and must not
            // take the id back (each would fence the other in turn). Kafka's own clients stop here too.
            this.emit('error', error);
            void this.stop().catch((e: unknown) => this.emit('error', kafkaClientError(e)));
            return;
          }
          this.emit('error', kafkaClientError(cause));
          // Only an abort that reached the coordinator leaves a producer worth keeping.
          if (!(error instanceof CleanAbort)) await this.#replaceProducer();
          // The offsets did not move: read the records again from the committed position.
          this.#queue = [];
          await subscription.rewind().catch((e: unknown) => this.emit('error', e as Error));
          await delay(this.config.retryDelayMs);
        },
      );
      await this.#inFlight;
      this.#inFlight = undefined;
    }
  }

  /**
   * After the client failed mid-transaction, its view of the transaction is not to be trusted: the commit
   * may have landed or not, the coordinator may still hold it open (its offsets then keep every stable
   * offset fetch of the group waiting), or have aborted it on timeout and bumped the epoch, refusing every
   * later request of this producer. A new producer's InitProducerId settles all three: the coordinator
   * completes a commit that was written, aborts an open transaction, and hands out a fresh epoch.
   */
  async #replaceProducer(): Promise<void> {
    // Bounded: a client with a request that is never answered may never finish closing either.
    const close = (producer: Producer<string, Buffer, string, string>) =>
      within(producer.close(), 5_000, 'closing the producer').catch(() => {});
    await close(this.#producer);
    while (this.#running) {
      const producer = this.#newProducer();
      this.#producer = producer;
      try {
        // InitProducerId runs when a transaction begins; begin one that touches nothing, now, rather than
        // when the next records arrive: they may not arrive before the old transaction is settled.
        const transaction = await within(producer.beginTransaction(), this.config.stuckTransactionMs, 'InitProducerId');
        await transaction.cancel();
        return;
      } catch (error) {
        await producer.transaction?.cancel().catch(() => {});
        await close(producer);
        this.emit('error', kafkaClientError(error));
        await delay(this.config.retryDelayMs);
      }
    }
  }

  async #transaction(
    subscription: KafkaSubscription,
    owner: { generation: number; group: GroupMetadata },
    batch: IncomingRecord[],
  ): Promise<void> {
    const began = Date.now();
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
            throw new CleanAbort(error);
          }
          // Out of attempts, or never going to work: the input goes to its dead-letter topic in this very transaction.
          outputs.push(deadLetter(record, error, failures, this.config.groupId));
          deadLettered++;
        }
        if (outputs.length >= this.config.flushEvery) await flush();
      }
      await flush();
      if (subscription.generation !== owner.generation) {
        throw new CleanAbort(
          new ZerolossError('ZL_COMMIT_FENCED', 'the partitions were revoked or rewound while the transaction was open'),
        );
      }
      await transaction.addConsumer({ groupId: this.config.groupId } as KafkaConsumer<string, Buffer, string, string>);
      const group = owner.group;
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
      const abortError = await transaction.abort().then(
        () => undefined,
        async (failure: unknown) => {
          // Not even an abort got through: drop the local state; a new producer settles the transaction.
          await transaction.cancel().catch(() => {});
          return failure ?? new Error('the abort failed');
        },
      );
      // The coordinator answers PRODUCER_FENCED both when a newer producer took the transactional id and when
      // it aborted this transaction itself on timeout; a send then meets INVALID_PRODUCER_EPOCH and only the
      // abort says PRODUCER_FENCED. A transaction younger than its timeout cannot have timed out: the epoch
      // moved because a newer producer exists. Older, it is treated as timed out and the producer replaced.
      const fenced = producerFencedError(error) ?? producerFencedError(abortError);
      if (fenced && Date.now() - began < this.config.transactionTimeoutMs) throw fenced;
      // An abort on purpose whose abort failed is a client failure like any other.
      throw error instanceof CleanAbort && abortError !== undefined ? error.error : error;
    }
    for (const record of batch) this.#failures.delete(`${record.topic}\u0000${record.partition}\u0000${record.offset}`);
    this.emit('committed', { records: batch.length, outputs: sent - deadLettered, deadLettered });
  }
}

/**
 * @platformatic/kafka sends its per-request `timeout` (5 s by default, also the time a produce may wait for
 * the replicas) as InitProducerId's transaction timeout, and has no option of its own for it: every
 * transaction open for longer was aborted by the coordinator, so a batch slower than ~5 s never committed.
 * This producer asks for `transactionTimeoutMs` instead and leaves the request timeout as it is. `kGetApi` is
 * the client's exported hook for subclasses; the failures test reads the timeout back from the coordinator.
 */
class TransactionalProducer extends kafka.Producer<string, Buffer, string, string> {
  readonly #transactionTimeoutMs: number;

  constructor(transactionTimeoutMs: number, options: ProducerOptions<string, Buffer, string, string>) {
    super(options);
    this.#transactionTimeoutMs = transactionTimeoutMs;
  }

  override [kafka.kGetApi]<RequestArguments extends Array<unknown>, ResponseType>(
    name: string,
    callback: Callback<API<RequestArguments, ResponseType>>,
  ): void {
    if (name !== 'InitProducerId') {
      super[kafka.kGetApi](name, callback);
      return;
    }
    super[kafka.kGetApi]<RequestArguments, ResponseType>(name, (error, api) => {
      if (error || !api) {
        callback(error);
        return;
      }
      // Called as (connection, transactionalId, transactionTimeoutMs, producerId, producerEpoch, callback?).
      const send = api as unknown as (...args: unknown[]) => void;
      const withTimeout = (...args: unknown[]) => {
        args[2] = this.#transactionTimeoutMs;
        send(...args);
      };
      const wrapped = Object.assign(withTimeout, { async: promisify(withTimeout), key: api.key, version: api.version });
      callback(null, wrapped as unknown as API<RequestArguments, ResponseType>);
    });
  }
}

/** A transaction aborted on purpose (a transform's retryable failure, a revoke): the producer is fine. */
class CleanAbort extends Error {
  readonly error: ZerolossError;
  constructor(error: ZerolossError) {
    super(error.message, { cause: error });
    this.error = error;
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
