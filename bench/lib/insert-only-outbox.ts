import { PgWalStream } from '../../src/adapters/postgres/wal/pg-wal-stream.ts';
import { walSql } from '../../src/adapters/postgres/wal/wal-sql.ts';
import type { WalLedger, WalStream } from '../../src/ports/wal-stream.ts';
import { pool, zeroRecord } from './env.ts';
import { slotReleased, type WalBenchDatabase } from './wal-database.ts';

/**
 * Not a shipped mode: the floor of issue #14's insert-only outbox, for the relay bench to measure the
 * shipped WAL relay's code against. An outbox table with a primary key only, filled by plain inserts (no
 * key lock, no per-key sequence, no divert lookup), read through the same slot stream and decoder, and
 * recorded with one INSERT per batch (its ids, partitions and offsets as arrays) instead of an UPDATE per
 * row. Nothing reads its records back: trace, status, reconcile and retries are not built on it, which is
 * what would cost more; this is as cheap as such an outbox can be.
 */
export interface InsertOnlyOutbox {
  /** The slot `fill` makes afresh, and the publication it reads (insert-only, this table alone). */
  slot: string;
  publication: string;
  stream: WalStream;
  ledger: WalLedger;
  /** A fresh slot, then `messages` rows committed behind it, 10 per transaction, 8 at once. */
  fill(topic: string, messages: number, keys: number): Promise<void>;
  close(): Promise<void>;
}

export async function insertOnlyOutbox(db: WalBenchDatabase): Promise<InsertOnlyOutbox> {
  const schema = `${db.s.schema}_insert_only`;
  const q = `"${schema}"`;
  const slot = `${schema}_slot`;
  const publication = `${schema}_pub`;
  const query = (sql: string, params: unknown[] = []) => db.s.pool.query(sql, params);
  await query(`create schema ${q}`);
  await query(`create table ${q}.outbox (
    seq_id bigint generated always as identity primary key, message_id text not null, topic text not null,
    msg_key text not null, headers jsonb not null, payload bytea not null, created_at timestamptz not null default now())`);
  await query(`create table ${q}.sent_batch (
    id bigint generated always as identity primary key, seq_ids bigint[] not null, partitions int[] not null,
    offsets bigint[] not null, sent_at timestamptz not null default now())`);
  await query(`create publication "${publication}" for table ${q}.outbox with (publish = 'insert')`);
  const sql = walSql(q, { publication });
  const stream = new PgWalStream({
    url: db.url,
    schema,
    slot,
    publication,
    db: db.s.db,
    slotInfo: sql.slotInfo,
    slotCreationDone: sql.slotCreationDone,
    slotCreationFree: sql.slotCreationFree,
  });
  // The outbox's ledger for what the floor does not replace: its retry source polls the shipped outbox, where
  // no row ever fails in this benchmark.
  const ledger: WalLedger = {
    ...db.wal.ledger,
    heldKeys: async () => new Set(),
    async record(sent, failed) {
      // Nothing here could send a failed row again: a failure stops the measurement instead of losing the row.
      if (failed.length > 0) throw new Error(`the insert-only floor cannot record ${failed.length} failed row(s): ${failed[0]?.error}`);
      await query(`insert into ${q}.sent_batch (seq_ids, partitions, offsets) values ($1::bigint[], $2::int[], $3::bigint[])`, [
        sent.map((s) => s.ref),
        sent.map((s) => s.partition ?? null),
        sent.map((s) => (s.offset === undefined ? null : s.offset.toString())),
      ]);
      return { sent: sent.length };
    },
  };
  let offset = 0;
  return {
    slot,
    publication,
    stream,
    ledger,
    async fill(topic, messages, keys) {
      // A fresh slot per fill, as walBacklog does for the shipped relay (wal-database.ts says why).
      await slotReleased(db.s.pool, slot);
      await query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [slot]);
      await query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      const base = offset;
      offset += messages;
      await pool(Math.ceil(messages / 10), 8, (t) =>
        db.s.db.transaction(async (tx) => {
          for (let j = t * 10; j < Math.min(messages, (t + 1) * 10); j++) {
            const r = zeroRecord(topic, base + j, keys);
            await tx.query(`insert into ${q}.outbox (message_id, topic, msg_key, headers, payload) values ($1, $2, $3, $4::jsonb, $5)`, [
              r.headers['zl-id'],
              topic,
              r.key,
              JSON.stringify(r.headers),
              r.value,
            ]);
          }
        }),
      );
    },
    async close() {
      await slotReleased(db.s.pool, slot).catch(() => {});
      await query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [slot]).catch(() => {});
      await query(`drop publication if exists "${publication}"`).catch(() => {});
      await query(`drop schema if exists ${q} cascade`).catch(() => {});
    },
  };
}
