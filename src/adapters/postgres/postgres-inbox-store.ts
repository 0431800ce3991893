import { quoteIdent } from '../../core/identifier.ts';
import { turnBatch } from '../../core/turn-batch.ts';
import type { Claim, FirstStart, InboxEntry, InboxStore, StartLog, StartRef } from '../../ports/inbox-store.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { type InboxSql, inboxSql } from './inbox-sql.ts';

/** Inbox and start log over the zeroloss schema of the business database. */
export class PostgresInboxStore implements InboxStore, StartLog {
  readonly #db: Database;
  readonly #sql: InboxSql;
  readonly #askStart = turnBatch<PendingStart>((pending) => this.#flushStarts(pending));
  readonly #askRelease = turnBatch<PendingRelease>((pending) => this.#flushReleases(pending));

  constructor(db: Database, options: { schema?: string } = {}) {
    this.#db = db;
    this.#sql = inboxSql(quoteIdent(options.schema ?? 'zeroloss', 'schema'));
  }

  async claim(tx: SqlExecutor, e: InboxEntry): Promise<Claim> {
    const [claim = DUPLICATE] = await this.claimMany(tx, [e]);
    return claim;
  }

  async claimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<Claim[]> {
    if (entries.length === 0) return [];
    const groupId = (entries[0] as InboxEntry).groupId;
    if (entries.some((e) => e.groupId !== groupId)) throw new Error('claimMany takes the entries of one consumer group');
    // The first entry of a key is the one that may claim it; a later copy in the same batch is a duplicate.
    const firsts = new Map<string, InboxEntry>();
    for (const e of entries) if (!firsts.has(e.idempotencyKey)) firsts.set(e.idempotencyKey, e);
    const unique = [...firsts.values()];
    const { rows } = await tx.query<{ idempotency_key: string }>(this.#sql.inboxInsertMany, [
      groupId,
      unique.map((e) => e.idempotencyKey),
      unique.map((e) => e.messageId),
      unique.map((e) => e.topic),
      unique.map((e) => e.partition),
      unique.map((e) => e.offset.toString()),
      unique.map((e) => e.contentDigest ?? null),
      unique.map(deadKeyOf),
    ]);
    const inserted = new Set(rows.map((r) => r.idempotency_key));
    // Keys left out were applied before (told apart from conflicts by the digest applied under them) or are
    // parked behind an open dead letter; a batch of new messages costs no statement more.
    const left = unique.filter((e) => !inserted.has(e.idempotencyKey));
    const applied = new Map<string, string | null>();
    const parked = new Set<string>();
    if (left.length > 0) {
      const found = await tx.query<{ idempotency_key: string; digest: string | null; dead: boolean }>(this.#sql.inboxDigests, [
        groupId,
        left.map((e) => e.idempotencyKey),
        left.map(deadKeyOf),
      ]);
      for (const r of found.rows) {
        if (!r.dead) applied.set(r.idempotency_key, r.digest);
        else parked.add(r.idempotency_key);
      }
    }
    // A later copy whose dead-letter probe differs from the parked first one's (a replay copy, another
    // message under the id) is claimed as it would be alone, in a statement of its own after this one.
    const again = entries.filter((e) => {
      const first = firsts.get(e.idempotencyKey) as InboxEntry;
      return first !== e && !applied.has(e.idempotencyKey) && parked.has(e.idempotencyKey) && deadKeyOf(e) !== deadKeyOf(first);
    });
    const claimedAgain = new Map<InboxEntry, Claim>();
    if (again.length > 0) {
      const claims = await this.claimMany(tx, again);
      for (const [i, e] of again.entries()) claimedAgain.set(e, claims[i] as Claim);
    }
    return entries.map((e): Claim => {
      const retried = claimedAgain.get(e);
      if (retried) return retried;
      const first = firsts.get(e.idempotencyKey) as InboxEntry;
      if (first === e && inserted.has(e.idempotencyKey)) return CLAIMED;
      // Applied wins over parked: a dead letter of a key already applied (a conflict's) parks nothing.
      if (!applied.has(e.idempotencyKey) && parked.has(e.idempotencyKey)) return DEAD_LETTERED;
      // A later copy in this batch is compared with the first one, whose digest is the row's (or will be).
      const digest = inserted.has(e.idempotencyKey) ? first.contentDigest : applied.get(e.idempotencyKey);
      // No digest on either side (a row from before migration 7, a business key, a row since cleaned up): a duplicate, as before.
      if (e.contentDigest === undefined || digest === undefined || digest === null || digest === e.contentDigest) return DUPLICATE;
      return { kind: 'conflict', appliedDigest: digest };
    });
  }

  async unclaimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await tx.query(this.#sql.inboxDeleteMany, [entries[0]?.groupId, entries.map((e) => e.idempotencyKey)]);
  }

  async contains(groupId: string, idempotencyKey: string, contentDigest?: string): Promise<boolean> {
    const { rows } = await this.#db.query(this.#sql.inboxContains, [groupId, idempotencyKey, contentDigest ?? null]);
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

  /**
   * Starts asked for in the same turn of the event loop (the lanes of different keys) are written by one
   * statement: one round trip and one commit for the lot instead of one each.
   */
  firstStart(ref: StartRef): Promise<FirstStart | false> {
    return new Promise<FirstStart | false>((resolve, reject) => {
      this.#askStart({ ref, resolve, reject });
    });
  }

  #flushStarts(pending: PendingStart[]): void {
    const byGroup = new Map<string, PendingStart[]>();
    for (const p of pending) {
      const list = byGroup.get(p.ref.groupId);
      if (list) list.push(p);
      else byGroup.set(p.ref.groupId, [p]);
    }
    for (const [groupId, list] of byGroup) void this.#writeStarts(groupId, list);
  }

  async #writeStarts(groupId: string, list: PendingStart[]): Promise<void> {
    // One row per record: a record asked for twice at once gets its start once; the other ask sees it as running.
    const unique = new Map<string, PendingStart>();
    for (const p of list) {
      const id = recordId(p.ref.topic, p.ref.partition, p.ref.offset);
      if (!unique.has(id)) unique.set(id, p);
    }
    const refs = [...unique.values()].map((p) => p.ref);
    try {
      const { rows } = await this.#db.query<{ topic: string; msg_partition: number; msg_offset: string; failed: number }>(
        this.#sql.attemptFirstStarts,
        [
          groupId,
          refs.map((r) => r.topic),
          refs.map((r) => r.partition),
          refs.map((r) => r.offset.toString()),
          refs.map((r) => r.messageId ?? null),
        ],
      );
      const marked = new Map(rows.map((r) => [recordId(r.topic, Number(r.msg_partition), BigInt(r.msg_offset)), Number(r.failed ?? 0)]));
      for (const p of list) {
        const id = recordId(p.ref.topic, p.ref.partition, p.ref.offset);
        const failed = marked.get(id);
        p.resolve(unique.get(id) === p && failed !== undefined ? { failed } : false);
      }
    } catch (error) {
      for (const p of list) p.reject(error);
    }
  }

  async countStart(ref: StartRef): Promise<{ started: number; failed: number }> {
    const { rows } = await this.#db.query<{ started: number; failed: number }>(this.#sql.attemptStart, startParams(ref));
    return { started: Number(rows[0]?.started ?? 1), failed: Number(rows[0]?.failed ?? 0) };
  }

  /**
   * Releases asked for in the same turn of the event loop are written by one statement: one round trip and
   * one commit for the lot instead of one each. When a shared effect transaction fails, the effect batcher
   * asks in one turn for the marks of every member it does not run again (the failed message with its
   * failure count, the key's next messages that followed it into the transaction) and tells none of them
   * before all are back (effect-batcher.ts): one statement, after which a crash finds none of them marked.
   * The order comes from the batcher's wait, not from this batching.
   */
  release(ref: StartRef): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#askRelease({ ref, resolve, reject });
    });
  }

  #flushReleases(pending: PendingRelease[]): void {
    const byGroup = new Map<string, PendingRelease[]>();
    for (const p of pending) {
      const list = byGroup.get(p.ref.groupId);
      if (list) list.push(p);
      else byGroup.set(p.ref.groupId, [p]);
    }
    for (const [groupId, list] of byGroup) void this.#writeReleases(groupId, list);
  }

  async #writeReleases(groupId: string, list: PendingRelease[]): Promise<void> {
    const refs = list.map((p) => p.ref);
    try {
      await this.#db.query(this.#sql.attemptRelease, [
        groupId,
        refs.map((r) => r.topic),
        refs.map((r) => r.partition),
        refs.map((r) => r.offset.toString()),
        refs.map((r) => r.failedAttempt ?? 0),
      ]);
      for (const p of list) p.resolve();
    } catch (error) {
      for (const p of list) p.reject(error);
    }
  }

  async forget(groupId: string, topic: string, partition: number, committedOffset: bigint): Promise<void> {
    await this.#db.query(this.#sql.attemptCleanup, [groupId, topic, partition, committedOffset.toString()]);
  }
}

const CLAIMED: Claim = Object.freeze({ kind: 'claimed' });
const DUPLICATE: Claim = Object.freeze({ kind: 'duplicate' });
const DEAD_LETTERED: Claim = Object.freeze({ kind: 'dead-lettered' });

const deadKeyOf = (e: InboxEntry): string | null => (e.deadLetterKey === undefined ? e.idempotencyKey : e.deadLetterKey);

interface PendingStart {
  ref: StartRef;
  resolve: (first: FirstStart | false) => void;
  reject: (error: unknown) => void;
}

interface PendingRelease {
  ref: StartRef;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function recordId(topic: string, partition: number, offset: bigint): string {
  return `${topic}\u0000${partition}\u0000${offset}`;
}

function startParams(ref: StartRef): unknown[] {
  return [ref.groupId, ref.topic, ref.partition, ref.offset.toString(), ref.messageId ?? null];
}
