import type { Database } from '../../ports/sql-executor.ts';
import type { GroupMember, TopicPartitionCount } from '../shared/assign-partitions.ts';
import type { TableLogSql } from './table-log-sql.ts';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface OwnedGeneration extends TopicPartition {
  generation: bigint;
}

export type CommitStatus = 'committed' | 'fenced' | 'beyond_end';

export interface GroupState {
  members: GroupMember[];
  topics: TopicPartitionCount[];
  /** What the table says this member owns, with the generation of each claim. */
  owned: OwnedGeneration[];
}

/**
 * One member's view of its consumer group in the database: lease, partition ownership and fenced
 * commits. Each method is one autocommit statement, so no transaction is ever held open across a wait
 * (PGlite has a single connection that every other user would queue behind).
 */
export class GroupMembership {
  readonly #db: Database;
  readonly #sql: TableLogSql;
  readonly #channel: string;
  readonly groupId: string;
  readonly memberId: string;
  readonly #topics: string[];
  readonly #sessionMs: number;

  constructor(options: {
    db: Database;
    sql: TableLogSql;
    channel: string;
    groupId: string;
    memberId: string;
    topics: string[];
    sessionMs: number;
  }) {
    this.#db = options.db;
    this.#sql = options.sql;
    this.#channel = options.channel;
    this.groupId = options.groupId;
    this.memberId = options.memberId;
    this.#topics = options.topics;
    this.#sessionMs = options.sessionMs;
  }

  /** Inserts or renews this member and tells the other members to rebalance. */
  async join(): Promise<void> {
    await this.#db.query(this.#sql.join, [this.groupId, this.memberId, this.#topics, this.#sessionMs]);
    await this.announce();
  }

  /** Renews the lease; false when it had already run out (the member must rejoin). */
  async heartbeat(): Promise<boolean> {
    const { rows } = await this.#db.query(this.#sql.heartbeat, [this.groupId, this.memberId, this.#sessionMs]);
    return rows.length > 0;
  }

  async leave(): Promise<void> {
    await this.#db.query(this.#sql.leave, [this.groupId, this.memberId]);
    await this.announce();
  }

  /** Wakes every member of the group for a rebalance pass. */
  async announce(): Promise<void> {
    await this.#db.query(this.#sql.notify, [this.#channel, `g:${this.groupId}`]);
  }

  async state(): Promise<GroupState> {
    const { rows } = await this.#db.query<{ members: unknown; topics: unknown; owned: unknown }>(this.#sql.groupState, [
      this.groupId,
      this.memberId,
    ]);
    const row = rows[0];
    const members = json<Array<{ memberId: string; topics: string[] }>>(row?.members);
    const topics = json<Array<{ topic: string; partitions: number }>>(row?.topics);
    const owned = json<Array<{ topic: string; partition: number; generation: string }>>(row?.owned);
    return {
      members: members.map((m) => ({ memberId: m.memberId, topics: m.topics })),
      topics: topics.map((t) => ({ topic: t.topic, partitions: Number(t.partitions) })),
      owned: owned.map((o) => ({ topic: o.topic, partition: Number(o.partition), generation: BigInt(o.generation) })),
    };
  }

  /** Claims what it can of `wanted`; returns the partitions won, with their new generation. */
  async claim(wanted: TopicPartition[]): Promise<OwnedGeneration[]> {
    if (wanted.length === 0) return [];
    const topics = wanted.map((w) => w.topic);
    const partitions = wanted.map((w) => w.partition);
    await this.#db.query(this.#sql.ensureOwnerRows, [this.groupId, topics, partitions]);
    const { rows } = await this.#db.query<{ topic: string; partition: number; generation: string }>(this.#sql.claim, [
      this.groupId,
      this.memberId,
      topics,
      partitions,
    ]);
    return rows.map((r) => ({ topic: r.topic, partition: Number(r.partition), generation: BigInt(r.generation) }));
  }

  /** Committed offset (or undefined) and end offset of each partition. */
  async startPositions(partitions: TopicPartition[]): Promise<Array<TopicPartition & { committed?: bigint; high: bigint }>> {
    if (partitions.length === 0) return [];
    const { rows } = await this.#db.query<{ topic: string; partition: number; committed: string | null; high: string | null }>(
      this.#sql.startPositions,
      [this.groupId, partitions.map((p) => p.topic), partitions.map((p) => p.partition)],
    );
    return rows.map((r) => ({
      topic: r.topic,
      partition: Number(r.partition),
      committed: r.committed === null ? undefined : BigInt(r.committed),
      high: BigInt(r.high ?? '0'),
    }));
  }

  /** Gives partitions back (only where this member still owns them under that generation) and announces it. */
  async release(partitions: OwnedGeneration[]): Promise<void> {
    if (partitions.length === 0) return;
    await this.#db.query(this.#sql.release, [
      this.groupId,
      this.memberId,
      partitions.map((p) => p.topic),
      partitions.map((p) => p.partition),
      partitions.map((p) => p.generation.toString()),
    ]);
    await this.announce();
  }

  /** Writes offsets fenced by generation and bounded by each partition's end; returns what happened to each. */
  async commit(offsets: Array<OwnedGeneration & { offset: bigint }>): Promise<Array<TopicPartition & { status: CommitStatus }>> {
    if (offsets.length === 0) return [];
    const { rows } = await this.#db.query<{ topic: string; partition: number; status: CommitStatus }>(this.#sql.commit, [
      this.groupId,
      this.memberId,
      offsets.map((o) => o.topic),
      offsets.map((o) => o.partition),
      offsets.map((o) => o.offset.toString()),
      offsets.map((o) => o.generation.toString()),
    ]);
    return rows.map((r) => ({ topic: r.topic, partition: Number(r.partition), status: r.status }));
  }
}

/** json/json_agg come back parsed from pg and PGlite alike; a string is parsed in case a driver does not. */
function json<T>(value: unknown): T {
  if (typeof value === 'string') return JSON.parse(value) as T;
  return (value ?? []) as T;
}
