import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { GroupDeletion } from '../../ports/group-admin.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { tableLogSql } from './table-log-sql.ts';

export const tableLogAdminConfigSchema = z.object({ schema: z.string().default('zeroloss') }).strict();
export type TableLogAdminConfig = z.input<typeof tableLogAdminConfigSchema>;

export const retentionOptionsSchema = z
  .object({
    /** Only records older than this are deleted, however far every group has read. */
    minAgeMs: z
      .number()
      .int()
      .nonnegative()
      .default(7 * 24 * 3_600_000),
    /** Rows deleted per statement, so a big cleanup never holds one long transaction. */
    batchSize: z.number().int().positive().default(1_000),
    /** Limit to one topic; default all. */
    topic: z.string().optional(),
  })
  .strict();
export type RetentionOptions = z.input<typeof retentionOptionsSchema>;

export interface PartitionOffsets {
  partition: number;
  /** Lowest retained offset (equals `high` when the partition is empty). */
  low: bigint;
  /** Next offset to be written. */
  high: bigint;
}

export interface CommittedOffset {
  topic: string;
  partition: number;
  offset: bigint;
  memberId: string;
  generation: bigint;
  committedAt: Date;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  high: bigint;
  committed: bigint | undefined;
  lag: bigint;
}

export interface GroupDescription {
  members: Array<{ memberId: string; topics: string[]; leaseUntil: string; live: boolean }>;
  owners: Array<{ topic: string; partition: number; memberId: string | null; generation: bigint }>;
}

/** Topics, offsets, lag and retention of the table log. Thin: every statement lives in table-log-sql.ts. */
export class TableLogAdmin {
  readonly #db: Database;
  readonly #sql: ReturnType<typeof tableLogSql>;

  constructor(db: Database, config: TableLogAdminConfig = {}) {
    const parsed = parseConfig(tableLogAdminConfigSchema, config, 'table log admin');
    this.#db = db;
    this.#sql = tableLogSql(parsed.schema);
  }

  /**
   * Creates a topic with a fixed partition count. Creating an existing topic with the same count is a
   * no-op (`created: false`), so applications can call it at start-up; a different count is refused.
   */
  async createTopic(topic: string, partitions: number): Promise<{ created: boolean }> {
    validateTopic(topic);
    checkPartitions(partitions);
    return this.#db.transaction(async (tx) => {
      const inserted = await tx.query(this.#sql.createTopic, [topic, partitions]);
      if (inserted.rows.length === 0) {
        const { rows } = await tx.query<{ partitions: number }>(this.#sql.topicPartitions, [[topic]]);
        const existing = Number(rows[0]?.partitions);
        if (existing !== partitions) {
          throw new ZerolossError('ZL_TOPIC_EXISTS', `topic ${topic} exists with ${existing} partitions, not ${partitions}`, {
            details: { topic, partitions: existing },
          });
        }
        return { created: false };
      }
      await tx.query(this.#sql.createPartitions, [topic, partitions]);
      return { created: true };
    });
  }

  /**
   * Raises a topic's partition count (O4). Keys hash over the new count from then on, so a key's new
   * records may go to another partition than its old ones: drain the old records first where order matters.
   */
  async addPartitions(topic: string, total: number): Promise<void> {
    validateTopic(topic);
    checkPartitions(total);
    await this.#db.transaction(async (tx) => {
      const { rows } = await tx.query(this.#sql.growTopic, [topic, total]);
      if (rows.length === 0) {
        throw new ZerolossError('ZL_INVALID_CONFIG', `topic ${topic} does not exist or already has more than ${total} partitions`);
      }
      await tx.query(this.#sql.createPartitions, [topic, total]);
    });
  }

  async listTopics(): Promise<Array<{ topic: string; partitions: number }>> {
    const { rows } = await this.#db.query<{ topic: string; partitions: number }>(this.#sql.listTopics);
    return rows.map((r) => ({ topic: r.topic, partitions: Number(r.partitions) }));
  }

  async endOffsets(topic: string): Promise<PartitionOffsets[]> {
    const { rows } = await this.#db.query<{ partition: number; low: string; high: string }>(this.#sql.endOffsets, [topic]);
    return rows.map((r) => ({ partition: Number(r.partition), low: BigInt(r.low), high: BigInt(r.high) }));
  }

  async committedOffsets(groupId: string, topic?: string): Promise<CommittedOffset[]> {
    const { rows } = await this.#db.query<{
      topic: string;
      partition: number;
      committed_offset: string;
      member_id: string;
      generation: string;
      committed_at: Date | string;
    }>(this.#sql.committedOffsets, [groupId, topic ?? null]);
    return rows.map((r) => ({
      topic: r.topic,
      partition: Number(r.partition),
      offset: BigInt(r.committed_offset),
      memberId: r.member_id,
      generation: BigInt(r.generation),
      committedAt: new Date(r.committed_at),
    }));
  }

  /** Lag per partition: of one topic, or of every topic the group has committed on. */
  async lag(groupId: string, topic?: string): Promise<PartitionLag[]> {
    const { rows } = await this.#db.query<{ topic: string; partition: number; high: string; committed: string | null; lag: string }>(
      this.#sql.lag,
      [groupId, topic ?? null],
    );
    return rows.map((r) => ({
      topic: r.topic,
      partition: Number(r.partition),
      high: BigInt(r.high),
      committed: r.committed === null ? undefined : BigInt(r.committed),
      lag: BigInt(r.lag),
    }));
  }

  async describeGroup(groupId: string): Promise<GroupDescription> {
    const { rows } = await this.#db.query<{ members: unknown; owners: unknown }>(this.#sql.describeGroup, [groupId]);
    const parse = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : (v ?? [])) as T;
    const owners = parse<Array<{ topic: string; partition: number; memberId: string | null; generation: string }>>(rows[0]?.owners);
    return {
      members: parse<GroupDescription['members']>(rows[0]?.members),
      owners: owners.map((o) => ({ ...o, partition: Number(o.partition), generation: BigInt(o.generation) })),
    };
  }

  /** Forgets a group entirely (offsets, owners, members); it stops holding back retention. */
  /** `zeroloss groups delete`: the group's offsets and owners on `topics`; refused while a member is live. */
  async deleteGroupOn(groupId: string, topics: string[]): Promise<GroupDeletion> {
    const { rows } = await this.#db.query<{ live: number; deleted: string[] }>(this.#sql.deleteGroupTopics, [groupId, topics]);
    if (Number(rows[0]?.live ?? 0) > 0) {
      throw new ZerolossError('ZL_GROUP_ACTIVE', `group ${groupId} has live members; stop its consumers first`, {
        details: { groupId },
      });
    }
    return { groupId, deleted: rows[0]?.deleted ?? [] };
  }

  async deleteGroup(groupId: string): Promise<void> {
    await this.#db.transaction(async (tx) => {
      await tx.query(this.#sql.deleteGroupOffsets, [groupId]);
      await tx.query(this.#sql.deleteGroupOwners, [groupId]);
      await tx.query(this.#sql.deleteGroupMembers, [groupId]);
    });
  }

  /**
   * Deletes records every group has committed past and that are older than `minAgeMs`, one batch per
   * statement until none is left; returns how many went. A topic no group has committed on keeps
   * everything: the log never drops a record nobody has read. Nothing runs this in the background;
   * call it from a scheduler of your choice.
   */
  async deleteRetained(options: RetentionOptions = {}): Promise<number> {
    const o = parseConfig(retentionOptionsSchema, options, 'retention');
    let total = 0;
    for (;;) {
      const { rows } = await this.#db.query<{ deleted: number }>(this.#sql.deleteRetained, [o.minAgeMs, o.batchSize, o.topic ?? null]);
      const deleted = Number(rows[0]?.deleted ?? 0);
      total += deleted;
      if (deleted < o.batchSize) return total;
    }
  }
}

function checkPartitions(partitions: number): void {
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > 10_000) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `partition count must be an integer of 1-10000, got ${partitions}`);
  }
}
