import type { Redis } from 'ioredis';
import type { IncomingRecord } from '../../core/envelope.ts';
import { classifyError } from '../../core/errors.ts';
import type { SubscribeOptions, Subscription } from '../../ports/transport.ts';
import type { GroupMember } from '../shared/assign-partitions.ts';
import { commitFencedError, latestOffsets } from '../shared/latest-offsets.ts';
import { LoopWaker } from '../shared/loop-waker.ts';
import { activePartitions, memberShare } from '../shared/member-share.ts';
import { fromPartitionSlot, partitionSlot } from '../shared/partition-slot.ts';
import { callReporting, joinFailedError, onRecordsThrewError, runOnRevoke } from '../shared/subscription-callbacks.ts';
import { readPartitionCounts } from './redis-streams-admin.ts';
import { connectRedis } from './redis-streams-connection.ts';
import { redisError } from './redis-streams-errors.ts';
import { type RedisStreamsKeys, redisStreamsKeys } from './redis-streams-keys.ts';
import { idOfOffset, offsetOfId } from './redis-streams-offsets.ts';
import { ACK, DROP_CONSUMER, HEARTBEAT, LEASE, READ, RELEASE, runScript } from './redis-streams-scripts.ts';
import { replyFields } from './redis-reply-fields.ts';

export interface RedisStreamsSettings {
  url: string;
  prefix: string;
  heartbeatIntervalMs: number;
  sessionTimeoutMs: number;
  pollIntervalMs: number;
  maxBatchRecords: number;
  startFrom: 'earliest' | 'latest';
  rebalanceTimeoutMs: number;
  commandTimeoutMs: number;
}

/**
 * `active`: read and delivered. `revoked`: onRevoke has run (or is running); nothing more goes out, but
 * the lease is kept until it is released, so a commit made inside onRevoke still lands. `lost`: the
 * lease ran out or was taken; nothing more goes out and commits are refused.
 */
interface OwnedPartition {
  topic: string;
  partition: number;
  stream: string;
  lease: string;
  state: 'active' | 'revoked' | 'lost';
  /** Where XAUTOCLAIM goes on in the group's pending entries; undefined once they were all taken over. */
  claimFrom: string | undefined;
  /** Read but not yet handed to onRecords (paused, or more than one batch). */
  buffer: IncomingRecord[];
  /** Delivered and not yet acknowledged: what a commit acknowledges. */
  unacked: Set<bigint>;
  /** The offset after the last one delivered in this ownership; guards against a repeat within it. */
  next: bigint;
}

const ACK_CHUNK = 1_000;

/**
 * One member of a consumer group on Redis Streams. A single loop does everything that touches ownership
 * (rebalance passes, reads and delivery), so a partition is never delivered while it is being revoked;
 * only the lease renewal runs on its own timer, so that a slow onRevoke or handler does not let a lease
 * run out.
 *
 * A newly owned partition is first taken over from the group's pending entries list (XAUTOCLAIM from
 * the start, in id order: what the previous owner read and never acknowledged), and only then read for
 * new entries, so a later entry of a key never overtakes an earlier one.
 */
export class RedisStreamsSubscription implements Subscription {
  readonly memberId: string;
  readonly #settings: RedisStreamsSettings;
  readonly #options: SubscribeOptions;
  readonly #onError: (error: Error) => void;
  readonly #keys: RedisStreamsKeys;
  readonly #commands: Redis;
  readonly #reader: Redis;
  readonly #owned = new Map<string, OwnedPartition>();
  readonly #touched = new Set<string>();
  #paused = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #rebalanceDue = true;
  #lastRebalance = 0;
  readonly #waker = new LoopWaker();
  #loop: Promise<void> = Promise.resolve();
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #heartbeat: Promise<void> = Promise.resolve();

  constructor(options: {
    memberId: string;
    settings: RedisStreamsSettings;
    subscribe: SubscribeOptions;
    onError: (error: Error) => void;
  }) {
    this.memberId = options.memberId;
    this.#settings = options.settings;
    this.#options = options.subscribe;
    this.#onError = options.onError;
    this.#keys = redisStreamsKeys(options.settings.prefix);
    this.#commands = connectRedis(options.settings.url, options.settings.commandTimeoutMs, `zeroloss-${options.memberId}`);
    // The reader blocks in XREADGROUP for up to pollIntervalMs; its timeout must allow for that.
    this.#reader = connectRedis(
      options.settings.url,
      options.settings.commandTimeoutMs + options.settings.pollIntervalMs,
      `zeroloss-${options.memberId}-reader`,
    );
  }

  get #groupId(): string {
    return this.#options.groupId;
  }

  /** Joins the group and takes a first share of partitions; resolves once the member is running. */
  async start(): Promise<void> {
    try {
      await this.#rebalance();
    } catch (error) {
      this.#closing = true;
      await this.#leave().catch(() => {});
      this.#disconnect();
      throw joinFailedError(this.#groupId, error);
    }
    this.#scheduleHeartbeat();
    this.#loop = this.#run();
  }

  /** The partitions this member currently delivers. */
  assignment(): Array<{ topic: string; partition: number }> {
    return activePartitions(this.#owned.values());
  }

  /**
   * Acknowledges (XACK), per partition, the delivered entries below the offset. Only partitions whose
   * lease this member still holds are acknowledged; if any is not, the others still are and the call
   * rejects with ZL_COMMIT_FENCED naming the partitions lost (their entries go to the new owner again).
   */
  async commit(offsets: Array<{ topic: string; partition: number; offset: bigint }>): Promise<void> {
    const latest = latestOffsets(offsets);
    const fenced: Array<{ topic: string; partition: number }> = [];
    for (const o of latest.values()) {
      const owned = this.#owned.get(partitionSlot(o));
      if (!owned || owned.state === 'lost' || !(await this.#ack(owned, o.offset))) fenced.push({ topic: o.topic, partition: o.partition });
    }
    if (fenced.length > 0) {
      throw commitFencedError(fenced);
    }
  }

  /** False if the lease turned out not to be ours. */
  async #ack(owned: OwnedPartition, below: bigint): Promise<boolean> {
    const done = [...owned.unacked].filter((o) => o < below).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 0; i === 0 || i < done.length; i += ACK_CHUNK) {
      const part = done.slice(i, i + ACK_CHUNK);
      let reply: unknown;
      try {
        reply = await runScript(this.#commands, ACK, [owned.lease, owned.stream], [this.memberId, this.#groupId, ...part.map(idOfOffset)]);
      } catch (error) {
        throw redisError(error, `acknowledging ${owned.topic}/${owned.partition}`);
      }
      if (Number(reply) < 0) {
        owned.state = 'lost';
        this.#rebalanceDue = true;
        this.#waker.wake();
        return false;
      }
      for (const o of part) owned.unacked.delete(o);
    }
    return true;
  }

  /** Entries not yet acknowledged (pending) plus those not yet read by the group, per assigned partition. */
  async lag(): Promise<Array<{ topic: string; partition: number; lag: bigint }>> {
    const out: Array<{ topic: string; partition: number; lag: bigint }> = [];
    for (const p of [...this.#owned.values()].filter((o) => o.state === 'active')) {
      const groups = (await this.#commands.call('XINFO', 'GROUPS', p.stream)) as unknown[][];
      for (const g of groups) {
        const info = replyFields(g);
        if (String(info.get('name')) !== this.#groupId) continue;
        out.push({ topic: p.topic, partition: p.partition, lag: BigInt(Number(info.get('pending') ?? 0) + Number(info.get('lag') ?? 0)) });
      }
    }
    return out;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#waker.wake();
  }

  /** Stops delivery, runs onRevoke for what it owns, gives the partitions back and leaves the group. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#heartbeatTimer);
    this.#waker.wake();
    // Ends a blocked XREADGROUP at once. Entries it had already taken stay pending under this member,
    // and the next owner takes them over.
    this.#reader.disconnect();
    await this.#loop;
    await this.#heartbeat;
    try {
      const all = [...this.#owned.values()];
      await this.#revoke(all.filter((p) => p.state === 'active'));
      await runScript(
        this.#commands,
        RELEASE,
        all.map((p) => p.lease),
        [this.memberId],
      );
      this.#owned.clear();
      await this.#leave();
      for (const stream of this.#touched) await runScript(this.#commands, DROP_CONSUMER, [stream], [this.#groupId, this.memberId]);
    } catch (error) {
      // The leases run out on their own; the other members take over after them.
      this.#onError(classifyError(error));
    }
    this.#owned.clear();
    this.#disconnect();
  }

  async #run(): Promise<void> {
    let errorDelay = 0;
    while (!this.#closing) {
      this.#waker.woken = false;
      let progressed = false;
      try {
        if (this.#rebalanceDue || Date.now() - this.#lastRebalance >= this.#settings.heartbeatIntervalMs) await this.#rebalance();
        if (!this.#closing) progressed = await this.#readAndDeliver();
        errorDelay = 0;
      } catch (error) {
        if (this.#closing) break;
        this.#onError(classifyError(error));
        errorDelay = Math.min(Math.max(errorDelay * 2, 100), 5_000);
      }
      if (this.#closing) break;
      if ((progressed && errorDelay === 0) || this.#waker.woken) continue;
      await this.#waker.sleep(errorDelay || Math.max(1, this.#untilRebalance()));
    }
  }

  #untilRebalance(): number {
    return this.#lastRebalance + this.#settings.heartbeatIntervalMs - Date.now();
  }

  /**
   * One rebalance pass: renew the session and read the live members, compute the assignment, stop and
   * hand back what is no longer ours (onRevoke first), drop what was lost, and lease what is ours and free.
   */
  async #rebalance(): Promise<void> {
    this.#rebalanceDue = false;
    this.#lastRebalance = Date.now();
    const members = await this.#members(JSON.stringify(this.#options.topics));
    const counts = await readPartitionCounts(this.#commands, this.#keys, this.#options.topics);
    const mine = memberShare(this.memberId, members, counts);
    const lost = [...this.#owned.values()].filter((p) => p.state === 'lost');
    const giveBack = [...this.#owned.values()].filter((p) => p.state !== 'lost' && !mine.has(partitionSlot(p)));
    await this.#revoke([...lost, ...giveBack]);
    for (const p of [...lost, ...giveBack]) this.#owned.delete(partitionSlot(p));
    // Forgotten before the release, not after: if the release fails (the connection drops), a partition
    // still held here as revoked would keep its lease renewed and, given back to this member by a later
    // pass, be neither wanted nor read. Forgotten, its lease runs out unless a later pass takes it again.
    if (giveBack.length > 0) {
      await runScript(
        this.#commands,
        RELEASE,
        giveBack.map((p) => p.lease),
        [this.memberId],
      );
    }
    if (this.#closing) return;
    const wanted = [...mine].filter((s) => !this.#owned.has(s)).map(fromPartitionSlot);
    if (wanted.length === 0) return;
    const leases = wanted.map((w) => this.#keys.lease(this.#groupId, w.topic, w.partition));
    const held = (await runScript(this.#commands, LEASE, leases, [this.memberId, this.#settings.sessionTimeoutMs, 'take'])) as number[];
    const assigned: Array<{ topic: string; partition: number }> = [];
    for (const [i, w] of wanted.entries()) {
      if (Number(held[i]) !== 1) continue;
      const stream = this.#keys.stream(w.topic, w.partition);
      await this.#ensureGroup(stream);
      this.#touched.add(stream);
      this.#owned.set(partitionSlot(w), {
        ...w,
        stream,
        lease: leases[i]!,
        state: 'active',
        claimFrom: '0-0',
        buffer: [],
        unacked: new Set(),
        next: 0n,
      });
      assigned.push(w);
    }
    if (assigned.length > 0) callReporting(() => this.#options.onAssign?.(assigned), this.#onError);
  }

  /** Renews this member's session (or ends it with topics ''); returns the live members. */
  async #members(topicsJson: string): Promise<GroupMember[]> {
    const flat = (await runScript(
      this.#commands,
      HEARTBEAT,
      [this.#keys.members(this.#groupId), this.#keys.memberTopics(this.#groupId)],
      [this.memberId, this.#settings.sessionTimeoutMs, topicsJson],
    )) as string[];
    const members: GroupMember[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) members.push({ memberId: String(flat[i]), topics: parseTopics(String(flat[i + 1])) });
    return members;
  }

  async #leave(): Promise<void> {
    await this.#members('');
  }

  /** Creates the group on the stream if this is its first member there. */
  async #ensureGroup(stream: string): Promise<void> {
    try {
      await this.#commands.call('XGROUP', 'CREATE', stream, this.#groupId, this.#settings.startFrom === 'latest' ? '$' : '0');
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('BUSYGROUP')) return;
      throw redisError(error, `creating group ${this.#groupId} on ${stream}`);
    }
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

  /**
   * Delivers what is buffered, else takes over pending entries of newly owned partitions, else reads new
   * entries (blocking until some arrive or the next rebalance is due). True if the loop should go on at once.
   */
  async #readAndDeliver(): Promise<boolean> {
    if (this.#paused) return false;
    const active = [...this.#owned.values()].filter((p) => p.state === 'active');
    if (active.length === 0) return false;
    if (this.#deliverBuffered(active)) return true;
    const claiming = active.filter((p) => p.claimFrom !== undefined);
    if (claiming.length > 0) {
      for (const p of claiming) await this.#claimPending(p);
      this.#deliverBuffered(active);
      return true;
    }
    // New entries are read only together with a check that the lease is still ours (the READ script);
    // a plain blocking XREADGROUP could run on the server after a takeover and strand what it took.
    let reply: Array<[number, Array<[Buffer, Buffer[] | null]> | Buffer]>;
    try {
      reply = (await runScript(
        this.#commands,
        READ,
        active.flatMap((p) => [p.lease, p.stream]),
        [this.memberId, this.#groupId, this.#settings.maxBatchRecords],
        { buffers: true },
      )) as typeof reply;
    } catch (error) {
      // The read may have happened with its reply lost (connection dropped, timeout): its entries now sit
      // in our pending list and '>' never returns them again. Take the pending list over again first;
      // what was already delivered in this ownership is skipped by `next`.
      for (const p of active) p.claimFrom = '0-0';
      throw error;
    }
    const waitFrom: Array<{ p: OwnedPartition; id: string }> = [];
    for (const [i, p] of active.entries()) {
      const [outcome, read] = reply[i] ?? [0, []];
      // Lost while the read was on its way (a renewal or a commit found the lease taken): the script ran while
      // the lease was still ours, so the next owner took the lease after it and claims what it read.
      if (p.state !== 'active') continue;
      if (Number(outcome) === 0) {
        p.state = 'lost';
        p.buffer = [];
        this.#rebalanceDue = true;
      } else if (Number(outcome) === 1) {
        for (const [id, fields] of read as Array<[Buffer, Buffer[] | null]>) p.buffer.push(toRecord(p, id.toString(), fields));
      } else {
        waitFrom.push({ p, id: (read as Buffer).toString() });
      }
    }
    if (this.#deliverBuffered(active) || this.#rebalanceDue || waitFrom.length < active.length) return true;
    // Nothing new anywhere: wait for an entry after the group's last-delivered id (XREAD takes nothing).
    const block = Math.max(1, Math.min(this.#settings.pollIntervalMs, this.#untilRebalance()));
    await this.#reader.call(
      'XREAD',
      'COUNT',
      1,
      'BLOCK',
      block,
      'STREAMS',
      ...waitFrom.map((w) => w.p.stream),
      ...waitFrom.map((w) => w.id),
    );
    return true;
  }

  /** One XAUTOCLAIM page of the partition's pending entries, whoever read them, in id order. */
  async #claimPending(p: OwnedPartition): Promise<void> {
    const [next, entries] = (await this.#commands.callBuffer(
      'XAUTOCLAIM',
      p.stream,
      this.#groupId,
      this.memberId,
      0,
      p.claimFrom!,
      'COUNT',
      this.#settings.maxBatchRecords,
    )) as [Buffer, Array<[Buffer, Buffer[] | null]>];
    if (p.state !== 'active') return;
    for (const [id, fields] of entries) if (fields) p.buffer.push(toRecord(p, id.toString(), fields));
    const from = next.toString();
    p.claimFrom = from === '0-0' ? undefined : from;
  }

  /** One batch per partition with buffered records; true if any was delivered. */
  #deliverBuffered(active: OwnedPartition[]): boolean {
    let delivered = false;
    for (const p of active) {
      // pause() inside an earlier onRecords stops the rest; the records stay buffered.
      if (this.#paused || this.#closing) break;
      if (p.state !== 'active') continue;
      const fresh = p.buffer.filter((r) => r.offset >= p.next);
      p.buffer = [];
      if (fresh.length === 0) continue;
      const records = fresh.slice(0, this.#settings.maxBatchRecords);
      p.buffer = fresh.slice(records.length);
      for (const r of records) p.unacked.add(r.offset);
      p.next = records[records.length - 1]!.offset + 1n;
      try {
        this.#options.onRecords({ topic: p.topic, partition: p.partition, records });
      } catch (error) {
        // Not taken: offered again after the loop's back-off.
        p.buffer = [...records, ...p.buffer];
        p.next = records[0]!.offset;
        throw onRecordsThrewError(`${p.topic}/${p.partition}`, error);
      }
      delivered = true;
    }
    return delivered;
  }

  #scheduleHeartbeat(): void {
    if (this.#closing) return;
    this.#heartbeatTimer = setTimeout(() => {
      this.#heartbeat = this.#renew()
        .catch((error: unknown) => this.#onError(redisError(error, 'renewing leases')))
        .finally(() => this.#scheduleHeartbeat());
    }, this.#settings.heartbeatIntervalMs);
  }

  /** Keeps the session and the leases alive; a lease that could not be renewed is lost at once. */
  async #renew(): Promise<void> {
    await this.#members(JSON.stringify(this.#options.topics));
    const kept = [...this.#owned.values()].filter((p) => p.state !== 'lost');
    if (kept.length === 0 || this.#closing) return;
    const held = (await runScript(
      this.#commands,
      LEASE,
      kept.map((p) => p.lease),
      [this.memberId, this.#settings.sessionTimeoutMs, 'renew'],
    )) as number[];
    kept.forEach((p, i) => {
      if (Number(held[i]) === 1) return;
      p.state = 'lost';
      p.buffer = [];
      this.#rebalanceDue = true;
      this.#waker.wake();
    });
  }

  #disconnect(): void {
    this.#reader.disconnect();
    this.#commands.quit().catch(() => this.#commands.disconnect());
  }
}

/**
 * An entry as the publisher wrote it: fields k (key), h (headers JSON), v (value). An entry someone else
 * wrote is delivered as well as it can be read, so the consumer dead-letters it with a reason.
 */
function toRecord(p: OwnedPartition, id: string, fields: Buffer[] | null): IncomingRecord {
  const f = new Map<string, Buffer>();
  for (let i = 0; fields && i + 1 < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
  let headers: Record<string, string> = {};
  try {
    const parsed: unknown = JSON.parse(f.get('h')?.toString() ?? '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) headers = parsed as Record<string, string>;
  } catch {
    headers = {};
  }
  return {
    topic: p.topic,
    partition: p.partition,
    offset: offsetOfId(id),
    key: f.get('k')?.toString() ?? '',
    value: f.get('v') ?? Buffer.alloc(0),
    headers,
  };
}

function parseTopics(json: string): string[] {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}
