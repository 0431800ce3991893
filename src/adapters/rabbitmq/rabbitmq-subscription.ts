import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { amqp } from './rabbitmq-driver.ts';
import type { IncomingRecord } from '../../core/envelope.ts';
import { classifyError, ZerolossError } from '../../core/errors.ts';
import type { SubscribeOptions, Subscription } from '../../ports/transport.ts';
import { commitFencedError, latestOffsets } from '../shared/latest-offsets.ts';
import { LoopWaker } from '../shared/loop-waker.ts';
import { activePartitions, memberShare } from '../shared/member-share.ts';
import { fromPartitionSlot, partitionSlot } from '../shared/partition-slot.ts';
import { callReporting, joinFailedError, onRecordsThrewError, runOnRevoke } from '../shared/subscription-callbacks.ts';
import { isResourceLocked, rabbitError } from './rabbitmq-errors.ts';
import { RabbitMembership } from './rabbitmq-membership.ts';
import { toRecord } from './rabbitmq-message.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { peekOffset, writeOffset } from './rabbitmq-offset-peek.ts';
import { probePartitions } from './rabbitmq-topology.ts';

export interface RabbitMqSettings {
  url: string;
  heartbeatIntervalMs: number;
  sessionTimeoutMs: number;
  maxBatchRecords: number;
  maxBatchWaitMs: number;
  prefetch: number;
  startFrom: 'earliest' | 'latest';
  rebalanceTimeoutMs: number;
  offsetRetentionMs: number;
  amqpHeartbeatSeconds: number;
}

/**
 * `active`: consumed and delivered. `revoked`: onRevoke has run (or is running); nothing more goes out,
 * but the lock is kept until it is released, so a commit made inside onRevoke still lands. `lost`: the
 * connection (and with it the lock) is gone or the broker cancelled the consumer; commits are refused.
 */
interface OwnedPartition {
  topic: string;
  partition: number;
  state: 'active' | 'revoked' | 'lost';
  /** The session whose connection holds the partition's lock queue. */
  session: Session;
  /**
   * The partition's own channel for its stream consumer: its delivery tags are this partition's alone, so
   * one multiple ack per batch returns the credit of exactly the records handed on.
   */
  channel: Channel | undefined;
  buffer: Array<{ record: IncomingRecord; message: ConsumeMessage }>;
  /** The offset after the last one delivered in this ownership; a stream re-read never repeats inside it. */
  next: bigint;
  /** When the offset queue was last declared: declaring counts as use, so it does not expire while owned. */
  declaredAt: number;
}

/** What lives and dies with one AMQP connection. */
interface Session {
  conn: ChannelModel;
  /** Membership, offsets (read and confirmed writes). */
  control: ConfirmChannel;
  /** Lock declarations; a refused one closes its channel, so it is replaced then. */
  lock: Channel | undefined;
  membership: RabbitMembership;
}

/**
 * One member of a consumer group on RabbitMQ streams. Ownership of a partition is an exclusive queue
 * (`zl.lock:…`) declared on this member's connection: RabbitMQ lets one connection at a time hold it and
 * deletes it when that connection ends, so a member that dies (or loses the network) frees its
 * partitions without a timer of ours, and two members never read one partition together.
 *
 * A newly owned partition is read from the group's committed offset (`x-stream-offset`); every record
 * after it comes again, in stream order, so a later record of a key never overtakes an earlier one.
 * Stream acks are only credit here; what was processed is the committed offset.
 */
export class RabbitMqSubscription implements Subscription {
  readonly memberId: string;
  readonly #settings: RabbitMqSettings;
  readonly #options: SubscribeOptions;
  readonly #onError: (error: Error) => void;
  readonly #owned = new Map<string, OwnedPartition>();
  readonly #counts = new Map<string, { partitions: number; at: number }>();
  #session: Session | undefined;
  #paused = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #flushScheduled = false;
  readonly #waker = new LoopWaker();
  #loop: Promise<void> = Promise.resolve();

  constructor(options: { memberId: string; settings: RabbitMqSettings; subscribe: SubscribeOptions; onError: (error: Error) => void }) {
    this.memberId = options.memberId;
    this.#settings = options.settings;
    this.#options = options.subscribe;
    this.#onError = options.onError;
  }

  get #groupId(): string {
    return this.#options.groupId;
  }

  /** Connects, joins the group and takes a first share of partitions; resolves once the member is running. */
  async start(): Promise<void> {
    try {
      await this.#rebalance();
    } catch (error) {
      this.#closing = true;
      await this.#session?.conn.close().catch(() => {});
      throw joinFailedError(this.#groupId, error);
    }
    this.#loop = this.#run();
  }

  /** The partitions this member currently delivers. */
  assignment(): Array<{ topic: string; partition: number }> {
    return activePartitions(this.#owned.values());
  }

  /**
   * Stores, per partition, the next offset to read, and waits for RabbitMQ to confirm it. Only
   * partitions this member still holds are written; if any is not, the others still are and the call
   * rejects with ZL_COMMIT_FENCED naming the partitions lost.
   */
  async commit(offsets: Array<{ topic: string; partition: number; offset: bigint }>): Promise<void> {
    const latest = latestOffsets(offsets);
    const fenced: Array<{ topic: string; partition: number }> = [];
    const writes: Array<Promise<void>> = [];
    const session = this.#session;
    for (const o of latest.values()) {
      const owned = this.#owned.get(partitionSlot(o));
      if (!owned || owned.state === 'lost' || !session) fenced.push({ topic: o.topic, partition: o.partition });
      else writes.push(this.#writeOffset(session, owned, o.offset));
    }
    const results = await Promise.allSettled(writes);
    const failed = results.find((r) => r.status === 'rejected');
    // The connection ended under the write: the lock went with it, so the partitions are no longer ours.
    if (failed && this.#session !== session) {
      const already = new Set(fenced.map(partitionSlot));
      for (const o of latest.values()) if (!already.has(partitionSlot(o))) fenced.push({ topic: o.topic, partition: o.partition });
    }
    if (fenced.length > 0) {
      throw commitFencedError(fenced);
    }
    if (failed) throw rabbitError(failed.reason, 'committing offsets');
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#scheduleFlush();
  }

  /** Stops delivery, runs onRevoke for what it owns, gives the partitions back and leaves the group. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    this.#waker.wake();
    await this.#loop;
    const session = this.#session;
    try {
      await this.#revoke([...this.#owned.values()].filter((p) => p.state === 'active'));
      session?.membership.announce(true);
    } catch (error) {
      this.#onError(classifyError(error));
    }
    this.#owned.clear();
    // Closing the connection deletes its lock queues: the partitions are free for the others at once.
    await session?.conn.close().catch(() => {});
  }

  async #run(): Promise<void> {
    let errorDelay = 0;
    while (!this.#closing) {
      await this.#waker.sleep(errorDelay || this.#settings.heartbeatIntervalMs);
      if (this.#closing) break;
      try {
        await this.#rebalance();
        errorDelay = 0;
      } catch (error) {
        if (this.#closing) break;
        this.#onError(classifyError(error));
        errorDelay = Math.min(Math.max(errorDelay * 2, 100), 5_000);
      }
    }
  }

  /**
   * One pass: (re)connect if the connection is gone, announce this member, compute the assignment, stop
   * and hand back what is no longer ours (onRevoke first), drop what was lost, lock and read what is ours.
   */
  async #rebalance(): Promise<void> {
    const lost = [...this.#owned.values()].filter((p) => p.state === 'lost');
    if (lost.length > 0) {
      await this.#revoke(lost);
      // A consumer the broker cancelled leaves its lock on a live connection: released like a given-back one.
      await this.#release(lost);
    }
    const session = this.#session ?? (await this.#connect());
    session.membership.announce();
    const counts = await this.#partitionCounts(session);
    const mine = memberShare(this.memberId, session.membership.members(), counts);
    const giveBack = [...this.#owned.values()].filter((p) => p.state !== 'lost' && !mine.has(partitionSlot(p)));
    await this.#revoke(giveBack);
    await this.#release(giveBack);
    if (this.#closing) return;
    const assigned: Array<{ topic: string; partition: number }> = [];
    for (const s of mine) {
      if (this.#owned.has(s)) continue;
      const { topic, partition } = fromPartitionSlot(s);
      if (await this.#take(session, topic, partition)) assigned.push({ topic, partition });
    }
    if (assigned.length > 0) callReporting(() => this.#options.onAssign?.(assigned), this.#onError);
  }

  async #connect(): Promise<Session> {
    const url = new URL(this.#settings.url);
    if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(this.#settings.amqpHeartbeatSeconds));
    // The name shows in `rabbitmqctl list_connections user_provided_name` and the management UI.
    const conn = await amqp.connect(url.toString(), { clientProperties: { connection_name: `zeroloss-${this.memberId}` } });
    conn.on('error', () => {});
    try {
      const control = await conn.createConfirmChannel();
      control.on('error', () => {});
      const membership = new RabbitMembership({
        channel: control,
        groupId: this.#groupId,
        memberId: this.memberId,
        topics: this.#options.topics,
        sessionMs: this.#settings.sessionTimeoutMs,
      });
      await membership.join();
      const session: Session = { conn, control, lock: undefined, membership };
      conn.on('close', () => this.#connectionLost(session));
      // A channel the broker closed takes its consumers or confirms with it: start the session over.
      control.on('close', () => void conn.close().catch(() => {}));
      this.#session = session;
      return session;
    } catch (error) {
      await conn.close().catch(() => {});
      throw error;
    }
  }

  /** The connection ended: its locks are gone, so every partition is lost; the next pass reconnects. */
  #connectionLost(session: Session): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    for (const p of this.#owned.values()) {
      p.state = 'lost';
      p.buffer = [];
    }
    if (!this.#closing)
      this.#onError(new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'RabbitMQ connection lost; reconnecting', { retryable: true }));
    this.#waker.wake();
  }

  /**
   * Locks the partition and starts reading it; false if another member holds it. A take that fails after
   * the lock is undone, lock included: a lock kept on a partition this member does not read would refuse
   * the member the assignment gives it to, on every pass, for as long as this connection lives.
   */
  async #take(session: Session, topic: string, partition: number): Promise<boolean> {
    if (!(await this.#lock(session, topic, partition))) return false;
    try {
      await this.#startReading(session, topic, partition);
      return true;
    } catch (error) {
      const recorded = this.#owned.get(partitionSlot({ topic, partition }));
      // A failed release means the control channel or the connection failed, which ends the connection
      // and the lock with it; the take's own error is the one to report.
      await this.#release([recorded ?? { topic, partition, session, channel: undefined }]).catch(() => {});
      throw error;
    }
  }

  /**
   * Lets go of partitions this member locked: forgets them all first, so a failure below leaves none half
   * given back; closes their channels and waits for the broker to confirm, so their consumers are gone;
   * only then deletes their lock queues, so the next owner never reads beside a consumer of ours. A lock
   * on a connection that has ended went with it. Every lock is tried; the first failure is thrown.
   */
  async #release(partitions: Array<Pick<OwnedPartition, 'topic' | 'partition' | 'session' | 'channel'>>): Promise<void> {
    for (const p of partitions) if (this.#owned.get(partitionSlot(p)) === p) this.#owned.delete(partitionSlot(p));
    await Promise.all(partitions.map((p) => closeChannel(p.channel)));
    const deletions = partitions
      .filter((p) => p.session === this.#session)
      .map((p) => p.session.control.deleteQueue(rabbitNames.lock(this.#groupId, p.topic, p.partition)));
    const failed = (await Promise.allSettled(deletions)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** True if this member now holds the partition's lock queue. */
  async #lock(session: Session, topic: string, partition: number): Promise<boolean> {
    if (!session.lock) {
      const ch = await session.conn.createChannel();
      ch.on('error', () => {});
      ch.on('close', () => {
        if (session.lock === ch) session.lock = undefined;
      });
      session.lock = ch;
    }
    try {
      await session.lock.assertQueue(rabbitNames.lock(this.#groupId, topic, partition), {
        exclusive: true,
        autoDelete: true,
        durable: false,
      });
      return true;
    } catch (error) {
      session.lock = undefined;
      if (isResourceLocked(error)) return false;
      throw error;
    }
  }

  async #startReading(session: Session, topic: string, partition: number): Promise<void> {
    const committed = await this.#readOffset(session, topic, partition);
    // The connection may have ended during the read (its errors there are waited out, not thrown): every
    // partition was marked lost then, and one recorded now would be owned on a dead session, never read
    // and skipped by every later pass. Taken again by the next pass, on the new connection.
    if (this.#session !== session) {
      throw new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `RabbitMQ connection lost while taking ${topic}/${partition}; retrying`, {
        retryable: true,
      });
    }
    const owned: OwnedPartition = {
      topic,
      partition,
      state: 'active',
      session,
      channel: undefined,
      buffer: [],
      next: committed ?? 0n,
      declaredAt: Date.now(),
    };
    this.#owned.set(partitionSlot(owned), owned);
    const from =
      committed !== undefined ? { '!': 'long', value: Number(committed) } : this.#settings.startFrom === 'latest' ? 'next' : 'first';
    const channel = await session.conn.createChannel();
    channel.on('error', () => {});
    // A channel the broker closed under a partition still held takes its consumer with it: start the session
    // over. One this member closed (the partition given back or lost) is no longer in #owned.
    channel.on('close', () => {
      if (!this.#closing && this.#session === session && this.#owned.get(partitionSlot(owned)) === owned)
        void session.conn.close().catch(() => {});
    });
    owned.channel = channel;
    await channel.prefetch(this.#settings.prefetch);
    await channel.consume(rabbitNames.partition(topic, partition), (message) => this.#received(owned, message), {
      noAck: false,
      arguments: { 'x-stream-offset': from },
    });
  }

  #received(owned: OwnedPartition, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer (the stream was deleted): give the partition up and retry later.
      if (owned.state === 'active') owned.state = 'lost';
      this.#waker.wake();
      return;
    }
    if (owned.state !== 'active') return;
    const record = toRecord(owned.topic, owned.partition, message);
    if (!record) {
      ackQuietly(owned.channel, message, false);
      return;
    }
    owned.buffer.push({ record, message });
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const run = () => {
      this.#flushScheduled = false;
      try {
        this.#flush();
      } catch (error) {
        this.#onError(classifyError(error));
        setTimeout(() => this.#scheduleFlush(), 100);
      }
    };
    if (this.#settings.maxBatchWaitMs > 0) setTimeout(run, this.#settings.maxBatchWaitMs);
    else setImmediate(run);
  }

  /** Hands each partition's buffered records to onRecords in batches; acks (credit) what was taken. */
  #flush(): void {
    for (const p of this.#owned.values()) {
      while (p.state === 'active' && p.buffer.length > 0) {
        // pause() inside an earlier onRecords stops the rest; the records stay buffered.
        if (this.#paused || this.#closing) return;
        const take = p.buffer.splice(0, this.#settings.maxBatchRecords);
        const fresh = take.filter((t) => t.record.offset >= p.next);
        if (fresh.length > 0) {
          const records = fresh.map((t) => t.record);
          try {
            this.#options.onRecords({ topic: p.topic, partition: p.partition, records });
          } catch (error) {
            p.buffer.unshift(...take);
            throw onRecordsThrewError(`${p.topic}/${p.partition}`, error);
          }
          p.next = records[records.length - 1]!.offset + 1n;
        }
        // Every earlier delivery of this channel is in this batch or was acked before it.
        ackQuietly(p.channel, take[take.length - 1]!.message, true);
      }
    }
  }

  /**
   * The group's committed offset of the partition, if any. The message is put back: it is the record. Read
   * under the peek queue, so an inspector reading it at the same moment cannot make it look absent.
   */
  async #readOffset(session: Session, topic: string, partition: number): Promise<bigint | undefined> {
    await this.#declareOffsetQueue(session, topic, partition);
    return peekOffset(session.conn, session.control, { groupId: this.#groupId, topic, partition });
  }

  async #writeOffset(session: Session, owned: OwnedPartition, offset: bigint): Promise<void> {
    if (Date.now() - owned.declaredAt > this.#settings.offsetRetentionMs / 4) {
      await this.#declareOffsetQueue(session, owned.topic, owned.partition);
      owned.declaredAt = Date.now();
    }
    await writeOffset(session.conn, session.control, { groupId: this.#groupId, topic: owned.topic, partition: owned.partition }, offset);
  }

  /**
   * One quorum queue per (group, partition) holding only the latest commit: max-length 1 drops the older
   * message when a newer one is confirmed. It expires after offsetRetentionMs unused.
   */
  async #declareOffsetQueue(session: Session, topic: string, partition: number): Promise<string> {
    const queue = rabbitNames.offset(this.#groupId, topic, partition);
    await session.control.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-max-length': 1,
        'x-overflow': 'drop-head',
        'x-expires': this.#settings.offsetRetentionMs,
      },
    });
    return queue;
  }

  /** Stops delivery of `partitions` and awaits onRevoke, bounded by the rebalance timeout. */
  async #revoke(partitions: OwnedPartition[]): Promise<void> {
    const stopping = partitions.filter((p) => p.state !== 'revoked');
    for (const p of partitions) {
      if (p.state === 'active') p.state = 'revoked';
      p.buffer = [];
    }
    await runOnRevoke(this.#options.onRevoke, stopping, this.#settings.rebalanceTimeoutMs, this.#onError);
  }

  async #partitionCounts(session: Session): Promise<Map<string, number>> {
    const now = Date.now();
    const counts = new Map<string, number>();
    for (const topic of this.#options.topics) {
      const cached = this.#counts.get(topic);
      // A missing topic is looked for again every pass; a known count is trusted for a few seconds.
      const partitions = cached && now - cached.at < 5_000 ? cached.partitions : await probePartitions(session.conn, topic);
      if (partitions === 0) continue;
      if (!cached || cached.partitions !== partitions || now - cached.at >= 5_000) this.#counts.set(topic, { partitions, at: now });
      counts.set(topic, partitions);
    }
    return counts;
  }
}

/** Stream acks are credit only: on a channel already gone there is nothing left to give it to. */
function ackQuietly(channel: Channel | undefined, message: ConsumeMessage, allUpTo: boolean): void {
  try {
    channel?.ack(message, allUpTo);
  } catch {
    // The channel closed (its close handler starts the session over, or the partition was let go).
  }
}

/** Resolves once the broker confirmed the close (its consumer is gone then), or at once if it was already closed. */
async function closeChannel(channel: Channel | undefined): Promise<void> {
  try {
    await channel?.close();
  } catch {
    // Closed already, by the broker or with the connection: it has no consumer left.
  }
}
