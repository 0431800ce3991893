import { classifyError, ZerolossError } from '../../core/errors.ts';
import type { Database } from '../../ports/sql-executor.ts';
import type { SubscribeOptions, Subscription } from '../../ports/transport.ts';
import { fetchBatches } from './table-log-fetch.ts';
import { commitFencedError, latestOffsets, listPartitions } from '../shared/latest-offsets.ts';
import { LoopWaker } from '../shared/loop-waker.ts';
import { activePartitions, memberShare } from '../shared/member-share.ts';
import { fromPartitionSlot, partitionSlot } from '../shared/partition-slot.ts';
import { callReporting, joinFailedError, onRecordsThrewError, runOnRevoke } from '../shared/subscription-callbacks.ts';
import { GroupMembership, type OwnedGeneration, type TopicPartition } from './table-log-group.ts';
import type { TableLogSql } from './table-log-sql.ts';

export interface SubscriptionSettings {
  heartbeatIntervalMs: number;
  sessionTimeoutMs: number;
  pollIntervalMs: number;
  maxBatchRecords: number;
  maxBatchBytes: number;
  startFrom: 'earliest' | 'latest';
  rebalanceTimeoutMs: number;
  listen: boolean;
}

/**
 * `active`: fetched and delivered. `revoked`: onRevoke has run (or is running) and no more records go
 * out, but the generation is kept until the partition is released, so a commit made inside onRevoke
 * still lands.
 */
interface OwnedPartition extends OwnedGeneration {
  position: bigint;
  state: 'active' | 'revoked';
}

/**
 * One member of a consumer group on the table log. A single loop does everything that touches
 * ownership (rebalance passes, fetch and delivery), so a partition is never delivered while it is being
 * revoked; only the lease heartbeat runs on its own timer, so that a slow onRevoke does not let the
 * lease run out.
 */
export class TableLogSubscription implements Subscription {
  readonly memberId: string;
  readonly #db: Database;
  readonly #sql: TableLogSql;
  readonly #listen: (onNotify: (payload: string) => void) => Promise<() => Promise<void>>;
  readonly #settings: SubscriptionSettings;
  readonly #options: SubscribeOptions;
  readonly #group: GroupMembership;
  readonly #onError: (error: Error) => void;
  readonly #owned = new Map<string, OwnedPartition>();
  #paused = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #rebalanceDue = true;
  #lastRebalance = 0;
  #expired = false;
  readonly #waker = new LoopWaker();
  #loop: Promise<void> = Promise.resolve();
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #heartbeat: Promise<void> = Promise.resolve();
  #unlisten: (() => Promise<void>) | undefined;

  constructor(options: {
    db: Database;
    sql: TableLogSql;
    channel: string;
    /** Registers for the log's notifications; the subscriber shares one LISTEN among its subscriptions. */
    listen: (onNotify: (payload: string) => void) => Promise<() => Promise<void>>;
    memberId: string;
    settings: SubscriptionSettings;
    subscribe: SubscribeOptions;
    onError: (error: Error) => void;
  }) {
    this.#db = options.db;
    this.#sql = options.sql;
    this.#listen = options.listen;
    this.#settings = options.settings;
    this.#options = options.subscribe;
    this.#onError = options.onError;
    this.memberId = options.memberId;
    this.#group = new GroupMembership({
      db: options.db,
      sql: options.sql,
      channel: options.channel,
      groupId: options.subscribe.groupId,
      memberId: options.memberId,
      topics: options.subscribe.topics,
      sessionMs: options.settings.sessionTimeoutMs,
    });
  }

  /** Joins the group and takes a first share of partitions; resolves once the member is running. */
  async start(): Promise<void> {
    try {
      if (this.#settings.listen) this.#unlisten = await this.#listen((payload) => this.#onNotify(payload));
      await this.#group.join();
      await this.#rebalance();
    } catch (error) {
      this.#closing = true;
      await this.#group.leave().catch(() => {});
      await this.#unlisten?.().catch(() => {});
      throw joinFailedError(this.#group.groupId, error);
    }
    this.#scheduleHeartbeat();
    this.#loop = this.#run();
  }

  /** The partitions this member currently delivers. */
  assignment(): TopicPartition[] {
    return activePartitions(this.#owned.values());
  }

  /**
   * Writes the next offset to read for each partition. Only partitions this member still owns under the
   * generation it claimed them with are written. If any is not (or an offset lies past the partition's
   * end) the others are still written and the call rejects: ZL_COMMIT_FENCED naming the partitions this
   * member lost (their records go to the new owner again), else ZL_INVALID_OFFSET.
   */
  async commit(offsets: Array<{ topic: string; partition: number; offset: bigint }>): Promise<void> {
    const latest = latestOffsets(offsets);
    const fenced: TopicPartition[] = [];
    const attempt: Array<OwnedGeneration & { offset: bigint }> = [];
    for (const o of latest.values()) {
      const owned = this.#owned.get(partitionSlot(o));
      if (owned) attempt.push({ topic: o.topic, partition: o.partition, generation: owned.generation, offset: o.offset });
      else fenced.push({ topic: o.topic, partition: o.partition });
    }
    const results = await this.#group.commit(attempt);
    const committed = results.filter((r) => r.status === 'committed').map(({ topic, partition }) => ({ topic, partition }));
    const beyondEnd = results.filter((r) => r.status === 'beyond_end').map(({ topic, partition }) => ({ topic, partition }));
    fenced.push(...results.filter((r) => r.status === 'fenced').map(({ topic, partition }) => ({ topic, partition })));
    if (fenced.length > 0) throw commitFencedError(fenced, { fenced, beyondEnd, committed });
    if (beyondEnd.length > 0) {
      throw new ZerolossError('ZL_INVALID_OFFSET', `not committed, offset past the end of: ${listPartitions(beyondEnd)}`, {
        details: { fenced, beyondEnd, committed },
      });
    }
  }

  /** Records after the committed offset (from the oldest retained one if nothing is committed), per assigned partition. */
  async lag(): Promise<Array<{ topic: string; partition: number; lag: bigint }>> {
    const assigned = this.assignment();
    if (assigned.length === 0 || this.#closing) return [];
    const { rows } = await this.#db.query<{ topic: string; partition: number; lag: string }>(this.#sql.partitionLag, [
      this.#group.groupId,
      assigned.map((p) => p.topic),
      assigned.map((p) => p.partition),
    ]);
    return rows.map((r) => ({ topic: r.topic, partition: Number(r.partition), lag: BigInt(r.lag) }));
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
    await this.#loop;
    await this.#heartbeat;
    try {
      const all = [...this.#owned.values()];
      await this.#revoke(all.filter((p) => p.state === 'active'));
      await this.#group.release(all);
      this.#owned.clear();
      await this.#group.leave();
    } catch (error) {
      // The lease runs out on its own; the other members take over after it.
      this.#onError(classifyError(error));
    }
    this.#owned.clear();
    await this.#unlisten?.().catch((error: unknown) => this.#onError(classifyError(error)));
  }

  async #run(): Promise<void> {
    let errorDelay = 0;
    while (!this.#closing) {
      this.#waker.woken = false;
      let delivered = false;
      try {
        if (this.#expired) {
          this.#expired = false;
          await this.#group.join();
          this.#rebalanceDue = true;
        }
        if (this.#rebalanceDue || Date.now() - this.#lastRebalance >= this.#settings.heartbeatIntervalMs) await this.#rebalance();
        if (!this.#closing) delivered = await this.#fetchAndDeliver();
        errorDelay = 0;
      } catch (error) {
        this.#onError(classifyError(error));
        errorDelay = Math.min(Math.max(errorDelay * 2, 100), 5_000);
      }
      if (this.#closing) break;
      // After a delivery, fetch again at once: the loop drains a backlog and sleeps only when caught up.
      if ((delivered && errorDelay === 0) || this.#waker.woken) continue;
      const untilRebalance = this.#lastRebalance + this.#settings.heartbeatIntervalMs - Date.now();
      await this.#waker.sleep(errorDelay || Math.max(1, Math.min(this.#settings.pollIntervalMs, untilRebalance)));
    }
  }

  /**
   * One rebalance pass: compute the assignment from the live members, stop and hand back what is no
   * longer ours (onRevoke first), drop what was taken from us, and claim what is ours and free.
   */
  async #rebalance(): Promise<void> {
    this.#rebalanceDue = false;
    this.#lastRebalance = Date.now();
    const state = await this.#group.state();
    const inGroup = state.members.some((m) => m.memberId === this.memberId);
    const mine = memberShare(this.memberId, state.members, state.topics);
    const table = new Map(state.owned.map((o) => [partitionSlot(o), o.generation]));
    const lost = [...this.#owned.values()].filter((p) => table.get(partitionSlot(p)) !== p.generation);
    const giveBack = [...this.#owned.values()].filter((p) => table.get(partitionSlot(p)) === p.generation && !mine.has(partitionSlot(p)));
    await this.#revoke([...lost, ...giveBack].filter((p) => p.state === 'active'));
    for (const p of lost) this.#owned.delete(partitionSlot(p));
    if (giveBack.length > 0) {
      await this.#group.release(giveBack);
      for (const p of giveBack) this.#owned.delete(partitionSlot(p));
    }
    // Ours in the database, not run here and no longer our share: a claim that committed before reading
    // where to start failed (a lost connection) left them so, and while this member lives no other may
    // claim them. Given back; what is still our share is claimed again below.
    const strays = state.owned.filter((o) => !this.#owned.has(partitionSlot(o)) && !mine.has(partitionSlot(o)));
    if (strays.length > 0) await this.#group.release(strays);
    if (!inGroup) {
      // Our lease ran out: the others may be taking our partitions. Rejoin before claiming anything.
      this.#expired = true;
      return;
    }
    const wanted = [...mine].filter((s) => this.#owned.get(s)?.state !== 'active').map(fromPartitionSlot);
    const claimed = await this.#group.claim(wanted);
    if (claimed.length === 0) return;
    const starts = new Map((await this.#group.startPositions(claimed)).map((s) => [partitionSlot(s), s]));
    // Positions the caller keeps with its effects (database offsets) win over the group's committed ones.
    // Read after the claim committed, like startPositions: the previous owner has finished by then.
    const kept = this.#options.startOffsets
      ? new Map(
          (await this.#options.startOffsets(claimed.map(({ topic, partition }) => ({ topic, partition })))).map((s) => [
            partitionSlot(s),
            s.offset,
          ]),
        )
      : undefined;
    for (const c of claimed) {
      const start = starts.get(partitionSlot(c));
      const position =
        kept?.get(partitionSlot(c)) ?? start?.committed ?? (this.#settings.startFrom === 'latest' ? (start?.high ?? 0n) : 0n);
      this.#owned.set(partitionSlot(c), { ...c, position, state: 'active' });
    }
    callReporting(() => this.#options.onAssign?.(claimed.map(({ topic, partition }) => ({ topic, partition }))), this.#onError);
  }

  /** Stops delivery of `partitions` and awaits onRevoke, bounded by the rebalance timeout. */
  async #revoke(partitions: OwnedPartition[]): Promise<void> {
    if (partitions.length === 0) return;
    for (const p of partitions) p.state = 'revoked';
    await runOnRevoke(this.#options.onRevoke, partitions, this.#settings.rebalanceTimeoutMs, this.#onError);
  }

  /** Fetches from every active partition and delivers one batch per partition; true if anything was delivered. */
  async #fetchAndDeliver(): Promise<boolean> {
    if (this.#paused) return false;
    const active = [...this.#owned.values()].filter((p) => p.state === 'active');
    if (active.length === 0) return false;
    const batches = await fetchBatches(this.#db, this.#sql, active, this.#settings);
    let delivered = false;
    for (const [s, records] of batches) {
      // pause() inside an earlier onRecords stops the rest of this fetch; those records are fetched again.
      if (this.#paused || this.#closing) break;
      const owned = this.#owned.get(s);
      const first = records[0]!;
      if (owned?.state !== 'active' || first.offset < owned.position) continue;
      try {
        this.#options.onRecords({ topic: first.topic, partition: first.partition, records });
      } catch (error) {
        // The batch was not taken: the position stays, and the loop backs off before offering it again.
        throw onRecordsThrewError(s.replace('\u0000', '/'), error);
      }
      owned.position = records[records.length - 1]!.offset + 1n;
      delivered = true;
    }
    return delivered;
  }

  #scheduleHeartbeat(): void {
    if (this.#closing) return;
    this.#heartbeatTimer = setTimeout(() => {
      this.#heartbeat = this.#group
        .heartbeat()
        .then((alive) => {
          if (!alive && !this.#closing) {
            this.#expired = true;
            this.#waker.wake();
          }
        })
        .catch((error: unknown) => this.#onError(classifyError(error)))
        .finally(() => this.#scheduleHeartbeat());
    }, this.#settings.heartbeatIntervalMs);
  }

  #onNotify(payload: string): void {
    if (payload === '' || payload === `g:${this.#group.groupId}`) {
      // '' is a listener reconnect: notifications may have been missed, so look at everything.
      this.#rebalanceDue = true;
      this.#waker.wake();
    } else if (payload.startsWith('t:') && this.#options.topics.includes(payload.slice(2))) {
      this.#waker.wake();
    }
  }
}
