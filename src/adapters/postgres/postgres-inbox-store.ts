import { quoteIdent } from '../../core/identifier.ts';
import type { InboxEntry, InboxStore, StartLog, StartRef } from '../../ports/inbox-store.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { type InboxSql, inboxSql } from './inbox-sql.ts';

/** Inbox and start log over the zeroloss schema of the business database. */
export class PostgresInboxStore implements InboxStore, StartLog {
  readonly #db: Database;
  readonly #sql: InboxSql;

  constructor(db: Database, options: { schema?: string } = {}) {
    this.#db = db;
    this.#sql = inboxSql(quoteIdent(options.schema ?? 'zeroloss', 'schema'));
  }

  async claim(tx: SqlExecutor, e: InboxEntry): Promise<boolean> {
    const { rows } = await tx.query(this.#sql.inboxInsert, [
      e.groupId,
      e.idempotencyKey,
      e.messageId,
      e.topic,
      e.partition,
      e.offset.toString(),
    ]);
    return rows.length === 1;
  }

  async contains(groupId: string, idempotencyKey: string): Promise<boolean> {
    const { rows } = await this.#db.query(this.#sql.inboxContains, [groupId, idempotencyKey]);
    return rows.length > 0;
  }

  async cleanup(groupId: string, olderThanMs: number, limit: number): Promise<number> {
    const { rows } = await this.#db.query<{ deleted: number }>(this.#sql.inboxCleanup, [groupId, olderThanMs, limit]);
    return rows[0]?.deleted ?? 0;
  }

  async storeOffset(executor: SqlExecutor, groupId: string, topic: string, partition: number, nextOffset: bigint): Promise<void> {
    await executor.query(this.#sql.offsetStore, [groupId, topic, partition, nextOffset.toString()]);
  }

  async loadOffsets(groupId: string, topics: string[]): Promise<Array<{ topic: string; partition: number; offset: bigint }>> {
    const { rows } = await this.#db.query<{ topic: string; msg_partition: number; next_offset: string }>(this.#sql.offsetLoad, [
      groupId,
      topics,
    ]);
    return rows.map((r) => ({ topic: r.topic, partition: Number(r.msg_partition), offset: BigInt(r.next_offset) }));
  }

  async firstStart(ref: StartRef): Promise<boolean> {
    const { rows } = await this.#db.query(this.#sql.attemptFirstStart, startParams(ref));
    return rows.length === 1;
  }

  async countStart(ref: StartRef): Promise<number> {
    const { rows } = await this.#db.query<{ started: number }>(this.#sql.attemptStart, startParams(ref));
    return Number(rows[0]?.started ?? 1);
  }

  async release(ref: StartRef): Promise<void> {
    await this.#db.query(this.#sql.attemptRelease, startParams(ref).slice(0, 4));
  }

  async forget(groupId: string, topic: string, partition: number, committedOffset: bigint): Promise<void> {
    await this.#db.query(this.#sql.attemptCleanup, [groupId, topic, partition, committedOffset.toString()]);
  }
}

function startParams(ref: StartRef): unknown[] {
  return [ref.groupId, ref.topic, ref.partition, ref.offset.toString(), ref.messageId ?? null];
}
