import type { Consumer, Message, MessagesStream } from '@platformatic/kafka';
import { kafka } from './kafka-driver.ts';
import { HookEmitter } from '../../core/hook-emitter.ts';
import { z } from 'zod';
import type { IncomingRecord } from '../../core/envelope.ts';
import { parseConfig } from '../../core/config.ts';
import type { ReceivedBatch, SubscribeOptions, Subscriber, Subscription } from '../../ports/transport.ts';
import { type KafkaClientConnection, type KafkaConnectionOptions, kafkaClientConnection } from './kafka-connection.ts';
import { kafkaAccessError, kafkaClientError, mentionsUnknownTopic, unknownTopicsError } from './kafka-errors.ts';

export const kafkaSubscriberConfigSchema = z
  .object({
    brokers: z.array(z.string().min(1)).min(1),
    clientId: z.string().min(1).default('zeroloss-consumer'),
    /** A member that misses heartbeats this long is removed and its partitions reassigned (broker minimum 6 000). */
    sessionTimeoutMs: z.number().int().min(1_000).default(30_000),
    heartbeatIntervalMs: z.number().int().positive().default(3_000),
    /** How long the group waits for members to rejoin; the consumer's revoke timeout must be shorter. */
    rebalanceTimeoutMs: z.number().int().positive().default(60_000),
    /** Static membership: a restarted process with the same id takes its partitions back without a rebalance. */
    groupInstanceId: z.string().min(1).optional(),
    maxWaitMs: z.number().int().positive().default(500),
    maxBytesPerPartition: z.number().int().positive().default(1_048_576),
    /** Where a group without a committed offset starts. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
    /** read_committed hides records of aborted and open Kafka transactions (P10 downstream). */
    isolation: z.enum(['read_committed', 'read_uncommitted']).default('read_committed'),
  })
  .strict();

/** The consumer-group settings, and how to connect (TLS, SASL: checked apart and kept out of `config`). */
export type KafkaSubscriberConfig = z.input<typeof kafkaSubscriberConfigSchema> & Pick<KafkaConnectionOptions, 'tls' | 'sasl'>;
type ResolvedConfig = Readonly<z.output<typeof kafkaSubscriberConfigSchema>>;

export interface KafkaSubscriberEvents {
  error: [Error];
}

/** What a Kafka transaction needs to commit consumer offsets as the group's current member (KIP-447 fencing). */
export interface GroupMetadata {
  groupId: string;
  generationId: number;
  memberId: string;
  coordinatorId: number;
}

/**
 * Subscriber over @platformatic/kafka consumer groups, offsets committed only on request.
 *
 * Rebalances use the eager protocol: before every JoinGroup the client awaits its `protocolsMetadata`
 * hook, and there we hand all assigned partitions to `onRevoke` and wait for it, so in-flight work is
 * finished or abandoned (and its offsets committed) before anything moves to another member.
 *
 * Each assignment gets its own message stream, opened after the join from the committed offsets and
 * closed before the next join. Records a closed stream had buffered are dropped, so every partition's
 * records reach `onRecords` in offset order and without a hole from the committed offset on.
 */
export class KafkaSubscriber extends HookEmitter<KafkaSubscriberEvents> implements Subscriber {
  readonly config: ResolvedConfig;
  readonly #connection: KafkaClientConnection;

  constructor(config: KafkaSubscriberConfig) {
    super();
    const { tls, sasl, ...settings } = config;
    this.config = parseConfig(kafkaSubscriberConfigSchema, settings, 'kafka subscriber');
    this.#connection = kafkaClientConnection({ brokers: this.config.brokers, tls, sasl }, 'kafka subscriber');
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<KafkaSubscription> {
    const subscription = new KafkaSubscription(this.config, this.#connection, options, (error) => {
      this.emit('error', error);
      // Called from the client's own event handlers: a throwing handler must not break them.
      try {
        options.onError?.(error);
      } catch {
        // the caller's own error handler failed; nothing better to tell it
      }
    });
    await subscription.start();
    return subscription;
  }
}

type Part = { topic: string; partition: number };
type KafkaMessage = Message<string, Buffer, string, string>;

export class KafkaSubscription implements Subscription {
  readonly #config: ResolvedConfig;
  readonly #options: SubscribeOptions;
  readonly #report: (error: Error) => void;
  readonly #consumer: Consumer<string, Buffer, string, string>;
  readonly #leaderEpochs = new Map<string, number>();
  #stream: MessagesStream<string, Buffer, string, string> | undefined;
  #assigned: Part[] = [];
  /** Bumped on every revoke and join: work started for an older generation is discarded. */
  #generation = 0;
  #pending = new Map<string, ReceivedBatch>();
  #flushScheduled = false;
  #revoking: Promise<unknown> = Promise.resolve();
  #paused = false;
  #closed = false;
  #rejoinTimer: NodeJS.Timeout | undefined;
  /** Per partition, the offset after the last record handed over, in generation `#handedGeneration`. */
  #handedUpTo = new Map<string, bigint>();
  #handedGeneration = -1;

  constructor(config: ResolvedConfig, connection: KafkaClientConnection, options: SubscribeOptions, report: (error: Error) => void) {
    this.#config = config;
    this.#options = options;
    // Refused credentials or an untrusted certificate are reported by their own codes, so a listener can
    // tell them (an operator must act) from a broker that is away for a moment.
    this.#report = (error) => report(kafkaClientError(error));
    this.#consumer = new kafka.Consumer<string, Buffer, string, string>({
      groupId: options.groupId,
      clientId: config.clientId,
      ...connection,
      autocommit: false,
      sessionTimeout: config.sessionTimeoutMs,
      heartbeatInterval: config.heartbeatIntervalMs,
      rebalanceTimeout: config.rebalanceTimeoutMs,
      ...(config.groupInstanceId ? { groupInstanceId: config.groupInstanceId } : {}),
      maxWaitTime: config.maxWaitMs,
      maxBytesPerPartition: config.maxBytesPerPartition,
      isolationLevel: config.isolation === 'read_committed' ? 1 : 0,
      deserializers: {
        key: (data?: Buffer) => data?.toString('utf8') ?? '',
        headerKey: (data?: Buffer) => data?.toString('utf8') ?? '',
        headerValue: (data?: Buffer) => data?.toString('utf8') ?? '',
      },
      protocolsMetadata: () => this.#beforeJoin(),
    });
  }

  async start(): Promise<void> {
    // A rejoin that failed for good leaves the client without heartbeats: try again, backing off, until one
    // succeeds or the subscription closes.
    this.#consumer.on('error', (error: Error) => {
      this.#report(error);
      this.#scheduleRejoin();
    });
    this.#consumer.on('consumer:group:join', () => this.#onJoin());
    // Held for the subscription's life: closing a per-assignment stream must not unsubscribe the topics.
    this.#consumer.topics.trackAll(...this.#options.topics);
    try {
      await this.#consumer.joinGroup({});
    } catch (error) {
      // The caller gets no subscription to close, so nothing of this one may keep running.
      const missing = mentionsUnknownTopic(error) ? await this.#missingTopics() : [];
      this.#closed = true;
      await this.#consumer.close(true).catch(() => {});
      throw missing.length > 0 ? unknownTopicsError(missing, error) : (kafkaAccessError(error) ?? error);
    }
  }

  /**
   * Tries to rejoin after `delayMs`, and again, doubling up to 30 s, while it fails. It tried once: when the
   * coordinator was away (or credentials refused) for longer than the client's own retries and that one
   * try, the member stayed out of the group for good: no heartbeat, no assignment, nothing read.
   */
  #scheduleRejoin(delayMs = 1_000): void {
    if (this.#rejoinTimer !== undefined || this.#closed) return;
    this.#rejoinTimer = setTimeout(() => {
      this.#rejoinTimer = undefined;
      if (this.#closed || this.#consumer.isActive()) return;
      this.#consumer.joinGroup({}).catch((error: Error) => {
        this.#report(error);
        this.#scheduleRejoin(Math.min(delayMs * 2, 30_000));
      });
    }, delayMs);
    this.#rejoinTimer.unref();
  }

  /** The subscribed topics the broker does not have, asked one by one: the client's error may name the wrong one. */
  async #missingTopics(): Promise<string[]> {
    const found = await Promise.all(
      this.#options.topics.map((topic) =>
        this.#consumer.metadata({ topics: [topic] }).then(
          () => undefined,
          (error: unknown) => (mentionsUnknownTopic(error) ? topic : undefined),
        ),
      ),
    );
    return found.filter((t) => t !== undefined);
  }

  /** Runs before every JoinGroup; serialised, because a failed commit inside onRevoke can trigger another join. */
  #beforeJoin(): Promise<Buffer> {
    const run = this.#revoking.then(() => this.#revokeAll());
    this.#revoking = run.catch(() => {});
    return run;
  }

  async #revokeAll(): Promise<Buffer> {
    const revoked = this.#assigned;
    const stream = this.#stream;
    this.#assigned = [];
    this.#stream = undefined;
    this.#generation++;
    this.#pending.clear();
    stream?.pause();
    if (revoked.length > 0 && this.#options.onRevoke) {
      try {
        await this.#options.onRevoke(revoked);
      } catch (error) {
        this.#report(error as Error);
      }
    }
    if (stream) await closeStream(stream);
    return Buffer.alloc(0);
  }

  #onJoin(): void {
    if (this.#closed) return;
    const assigned: Part[] = (this.#consumer.assignments ?? []).flatMap((a) =>
      a.partitions.map((partition) => ({ topic: a.topic, partition })),
    );
    this.#assigned = assigned;
    const generation = ++this.#generation;
    this.#options.onAssign?.(assigned);
    if (assigned.length > 0) void this.#openStream(generation);
  }

  async #openStream(generation: number): Promise<void> {
    let stream: MessagesStream<string, Buffer, string, string>;
    try {
      const positions = await this.#startPositions(generation);
      if (generation !== this.#generation || this.#closed) return;
      stream = await this.#consumer.consume({
        topics: this.#options.topics,
        ...(positions.length > 0 ? { mode: 'manual', offsets: positions } : { mode: 'committed' }),
        fallbackMode: this.#config.startFrom,
        autocommit: false,
        maxWaitTime: this.#config.maxWaitMs,
      });
    } catch (error) {
      this.#report(error as Error);
      this.#reopenLater(generation);
      return;
    }
    if (generation !== this.#generation || this.#closed) {
      await closeStream(stream);
      return;
    }
    this.#stream = stream;
    stream.on('data', (message: KafkaMessage) => {
      if (this.#stream === stream) this.#accept(message, generation);
    });
    stream.on('error', (error: Error) => {
      if (this.#stream !== stream) return;
      // A fetch failure destroys the stream; a new one resumes from the committed offsets, and the
      // consumer ignores what it was given twice.
      this.#stream = undefined;
      this.#report(error);
      this.#reopenLater(generation);
    });
    if (this.#paused) stream.pause();
  }

  /**
   * Where each assigned partition starts; empty: everywhere at the committed offsets (else `startFrom`).
   * In order of precedence: after the last record handed over in this generation (a stream reopened after a
   * fetch error: with nothing committed yet and `startFrom: 'latest'` it reopened at the end, past records
   * never handed over, and a later commit moved past them), the position kept with the effects
   * (startOffsets), the group's committed offset. In manual mode the client starts a partition without a
   * position at `startFrom`: so once any partition has one, the others are given their committed offsets
   * (they started at `startFrom`, skipping or replaying their backlog).
   */
  async #startPositions(generation: number): Promise<Array<{ topic: string; partition: number; offset: bigint }>> {
    const positions = new Map<string, { topic: string; partition: number; offset: bigint }>();
    const id = (p: Part) => `${p.topic}\u0000${p.partition}`;
    const stored = this.#options.startOffsets ? await this.#options.startOffsets(this.#assigned) : [];
    for (const s of stored) positions.set(id(s), s);
    if (this.#handedGeneration === generation) {
      for (const [key, offset] of this.#handedUpTo) {
        const [topic, partition] = key.split('\u0000') as [string, string];
        positions.set(key, { topic, partition: Number(partition), offset });
      }
    }
    const uncovered = this.#assigned.filter((p) => !positions.has(id(p)));
    if (positions.size > 0 && uncovered.length > 0) {
      const byTopic = new Map<string, number[]>();
      for (const p of uncovered) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition]);
      const committed = await this.#consumer.listCommittedOffsets({
        topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
      });
      for (const p of uncovered) {
        const offset = committed.get(p.topic)?.[p.partition];
        if (offset !== undefined && offset >= 0n) positions.set(id(p), { ...p, offset });
      }
    }
    return [...positions.values()];
  }

  #reopenLater(generation: number): void {
    setTimeout(() => {
      if (generation === this.#generation && !this.#closed && this.#stream === undefined) void this.#openStream(generation);
    }, 1_000).unref();
  }

  #accept(message: KafkaMessage, generation: number): void {
    const id = `${message.topic}\u0000${message.partition}`;
    this.#leaderEpochs.set(id, message.leaderEpoch);
    let batch = this.#pending.get(id);
    if (!batch) {
      batch = { topic: message.topic, partition: message.partition, records: [] };
      this.#pending.set(id, batch);
    }
    const record: IncomingRecord = {
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      key: message.key ?? '',
      // A null value (tombstone) arrives as empty bytes; the consumer dead-letters both alike.
      value: message.value ?? Buffer.alloc(0),
      headers: Object.fromEntries(message.headers),
      timestamp: Number(message.timestamp),
    };
    batch.records.push(record);
    if (!this.#flushScheduled) {
      // The stream pushes a whole fetch response synchronously: hand it over as one batch per partition.
      this.#flushScheduled = true;
      setImmediate(() => this.#flush(generation));
    }
  }

  #flush(generation: number): void {
    this.#flushScheduled = false;
    const batches = [...this.#pending.values()];
    this.#pending.clear();
    if (generation !== this.#generation || this.#closed) return;
    if (this.#handedGeneration !== generation) {
      this.#handedGeneration = generation;
      this.#handedUpTo.clear();
    }
    for (const batch of batches) {
      const last = batch.records[batch.records.length - 1];
      if (last) this.#handedUpTo.set(`${batch.topic}\u0000${batch.partition}`, last.offset + 1n);
    }
    for (const batch of batches) {
      try {
        this.#options.onRecords(batch);
      } catch (error) {
        this.#report(error as Error);
      }
    }
  }

  async commit(offsets: Array<{ topic: string; partition: number; offset: bigint }>): Promise<void> {
    if (offsets.length === 0 || this.#closed) return;
    await this.#consumer.commit({
      offsets: offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        leaderEpoch: this.#leaderEpochs.get(`${o.topic}\u0000${o.partition}`) ?? -1,
      })),
    });
  }

  /** The group membership a Kafka transaction commits offsets under (adapter-specific, used by P10). */
  groupMetadata(): GroupMetadata {
    return {
      groupId: this.#options.groupId,
      generationId: this.#consumer.generationId,
      memberId: this.#consumer.memberId ?? '',
      coordinatorId: this.#consumer.coordinatorId ?? -1,
    };
  }

  /**
   * Drops what was fetched and not yet handed over, and starts reading again from the committed (or
   * stored) offsets: after an aborted Kafka transaction, the records it covered must be read again.
   * Records already handed over for the current generation are not recalled; the caller discards them.
   */
  async rewind(): Promise<number> {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#pending.clear();
    const generation = ++this.#generation;
    if (stream) await closeStream(stream);
    if (!this.#closed && this.#assigned.length > 0) await this.#openStream(generation);
    return generation;
  }

  /** Bumped on every revoke, join and rewind; records delivered under an older one are stale. */
  get generation(): number {
    return this.#generation;
  }

  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
  }

  async lag(): Promise<Array<{ topic: string; partition: number; lag: bigint }>> {
    const assigned = this.#assigned;
    if (assigned.length === 0 || this.#closed) return [];
    const byTopic = new Map<string, number[]>();
    for (const p of assigned) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition]);
    const topics = [...byTopic.keys()];
    const [ends, committed] = await Promise.all([
      this.#consumer.listOffsets({ topics, partitions: Object.fromEntries(byTopic) }),
      this.#consumer.listCommittedOffsets({ topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) }),
    ]);
    return assigned.map((p) => {
      const end = ends.get(p.topic)?.[p.partition] ?? 0n;
      const done = committed.get(p.topic)?.[p.partition] ?? -1n;
      return { topic: p.topic, partition: p.partition, lag: done < 0n ? end : end > done ? end - done : 0n };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#rejoinTimer);
    this.#generation++;
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) await closeStream(stream);
    // Leaving the group hands our partitions over at once instead of after the session timeout.
    await this.#consumer.close(true);
  }
}

/** Closes a stream, destroying it if a graceful close does not finish promptly. */
async function closeStream(stream: MessagesStream<string, Buffer, string, string>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    stream.close().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        stream.destroy();
        resolve();
      }, 5_000);
    }),
  ]);
  clearTimeout(timer);
}
