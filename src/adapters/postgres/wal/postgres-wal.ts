import { ZerolossError } from '../../../core/errors.ts';
import { requireSlotTable } from './wal-slot-table.ts';
import { quoteIdent } from '../../../core/identifier.ts';
import type { ClaimedRow, FailedOutcome, RelaySource, SentOutcome } from '../../../ports/outbox-store.ts';
import type { Database, SqlExecutor } from '../../../ports/sql-executor.ts';
import type { WalFailure, WalLedger, WalSent, WalStream } from '../../../ports/wal-stream.ts';
import { type ClaimRow, claimedRows } from '../postgres-outbox-store.ts';
import { PastHeldKeys } from '../past-held-keys.ts';
import { PgWalStream } from './pg-wal-stream.ts';
import { walSql } from './wal-sql.ts';
import { walShardSql } from './wal-shard-sql.ts';
import { applyInsertOnly, awaitOutboxWriters, insertOnlyOn, leaveInsertOnly } from './insert-only-mode.ts';
import { outboxSlots, refuseSecondSlot } from './outbox-slots.ts';

export interface PostgresWalOptions {
  /** Connection string of the database: the slot is read over a replication connection of its own. */
  url: string;
  /** Slot name; default `zeroloss_<schema>`. */
  slot?: string;
  /** Publication name; default `zeroloss_<schema>_outbox`. */
  publication?: string;
  /** application_name of the replication connection (a shard's reader names its relay instance); default pg's. */
  applicationName?: string;
}

/** The WAL side of a Postgres store: the slot stream, what the relay records, and the slot's setup. */
export interface PostgresWal {
  readonly slot: string;
  readonly publication: string;
  readonly stream: WalStream;
  readonly ledger: WalLedger;
  /**
   * Creates the publication (when missing) and the slot, then hands the rows still pending to the polling
   * path (they predate the slot). Only ever called when asked: nothing creates a slot silently.
   * `insertOnly`: switch the outbox to the insert-only mode (docs/wal-relay.md) in the same transaction,
   * also when the slot exists already; every relay reading the outbox must be of this release or later.
   */
  createSlot(actor?: string, options?: { insertOnly?: boolean }): Promise<{ created: boolean; handedOver: number; insertOnly: boolean }>;
  /**
   * Drops the slot (the server stops keeping WAL for it); false when there was none. The outbox leaves the
   * insert-only mode, and its rows still in the stream go to the polling path, either way.
   */
  dropSlot(actor?: string): Promise<boolean>;
  /** Whether new outbox rows are inserted for the stream (the insert-only mode). */
  insertOnly(): Promise<boolean>;
}

/**
 * A Postgres array literal of values that need no quoting (integers, log positions) or nulls. pg escapes
 * each element of a JS array parameter; for a batch's four arrays of 2,000 that showed in the relay's profile.
 */
function plainArray(values: Array<string | number | bigint | undefined>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    out += v === undefined ? 'NULL' : String(v);
  }
  return `${out}}`;
}

/** How long a batch waits for its rows to become visible before the relay gives the batch up (and replays it). */
const RECORD_VISIBILITY_MS = 10_000;

/**
 * `store` is a Postgres store bundle (`postgres(…)`): its connection, schema and outbox relay source.
 * The replication connection needs the URL, which a pool passed by the application does not reveal.
 */
export function postgresWal(
  store: { db: Database; schema: string; relaySource: RelaySource; kind?: string },
  options: PostgresWalOptions,
): PostgresWal {
  if (store.kind !== undefined && store.kind !== 'postgres') {
    throw new ZerolossError('ZL_INVALID_CONFIG', `relay mode wal needs PostgreSQL (logical replication); this store is ${store.kind}`, {
      details: { field: 'mode' },
    });
  }
  if (typeof options?.url !== 'string' || options.url.length === 0) {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'relay mode wal needs the database URL for its replication connection', {
      details: { field: 'url' },
    });
  }
  const schema = store.schema;
  const s = quoteIdent(schema, 'schema');
  const slot = options.slot ?? `zeroloss_${schema}`;
  const publication = options.publication ?? `zeroloss_${schema}_outbox`;
  quoteIdent(slot, 'slot');
  quoteIdent(publication, 'publication');
  const sql = walSql(s, { publication });
  const db = store.db;
  const pastHeldKeys = new PastHeldKeys();
  const stream = new PgWalStream({
    url: options.url,
    schema,
    slot,
    publication,
    db,
    slotInfo: sql.slotInfo,
    slotCreationDone: sql.slotCreationDone,
    slotCreationFree: sql.slotCreationFree,
    applicationName: options.applicationName,
    currentLsn: sql.currentLsn,
  });

  async function slotRecorded(): Promise<boolean> {
    return (await db.query<{ recorded: boolean }>(sql.slotRecorded, [slot])).rows[0]?.recorded === true;
  }

  const retrySource: RelaySource = {
    name: `${schema}.outbox (wal retries)`,
    wakeChannel: undefined,
    async claim(owner: string, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
      const { rows } = await db.query<ClaimRow>(sql.retryClaim, [owner, limit, leaseMs]);
      // The window of oldest waiting rows may be all rows of held keys (wal-sql.ts, `retryClaimPastHeldKeys`).
      const claimed = await pastHeldKeys.claim(
        rows,
        (r) => r.length > 0,
        async () => (await db.query<ClaimRow>(sql.retryClaimPastHeldKeys, [owner, limit, leaseMs])).rows,
      );
      return claimedRows(claimed);
    },
    markSent: (owner: string, sent: SentOutcome[]) => store.relaySource.markSent(owner, sent),
    markFailed: (owner: string, failed: FailedOutcome[]) => store.relaySource.markFailed(owner, failed),
    backlog: () => store.relaySource.backlog(),
    async anyDue() {
      const { rows } = await db.query<{ due: boolean }>(sql.retryDue);
      return { due: rows[0]?.due === true };
    },
  };

  /** Records sent rows on the rows themselves and failed ones for the polling path; resolves to the sent rows changed. */
  async function recordRows(on: SqlExecutor, sent: WalSent[], failed: WalFailure[]): Promise<number> {
    const total = sent.length + failed.length;
    const params = [
      sent.map((o) => o.ref),
      sent.map((o) => o.partition ?? null),
      sent.map((o) => (o.offset === undefined ? null : o.offset.toString())),
      failed.map((f) => f.ref),
      failed.map((f) => f.error),
      failed.map((f) => f.delayMs),
      failed.map((f) => f.charge),
      `wal:${slot}`,
    ];
    // Rows of a commit streamed a moment before it is visible here are skipped by the UPDATE: repeat
    // (each pass changes only what is still unchanged) until the statement saw every row of the batch.
    let changed = 0;
    const deadline = Date.now() + RECORD_VISIBILITY_MS;
    for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
      const { rows } = await on.query<{ sent: number; visible: number }>(sql.record, params);
      changed += Number(rows[0]?.sent ?? 0);
      const visible = Number(rows[0]?.visible ?? 0);
      if (visible >= total) return changed;
      if (Date.now() > deadline) {
        // Long after its commit, a row that is still not there was deleted since (an operator's discard,
        // retention, the writer's own transaction): nothing is left to record for it, and waiting on it
        // would hold every later commit of the slot for good. Counted as not changed (a resend).
        const refs = [...sent.map((o) => o.ref), ...failed.map((f) => f.ref)];
        const { rows: present } = await on.query<{ n: number }>(sql.presentRows, [refs]);
        if (Number(present[0]?.n ?? 0) <= visible) return changed;
        throw new ZerolossError(
          'ZL_STORE_CONFLICT',
          `${total - visible} row(s) of a streamed commit are still not visible after ${RECORD_VISIBILITY_MS} ms`,
          {
            retryable: true,
            details: { slot },
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  // The reading (by where it began) in which a batch's record failed: its retries, and its other batches' records,
  // look at every row, as a repair may have marked them sent between the send and a record that came late.
  let failedFrom: string | undefined;

  const ledger: WalLedger = {
    retrySource,
    async record(all: WalSent[], failed: WalFailure[], batch) {
      // Insert-only rows (migration 21) are recorded by one row for the batch; rows inserted before the mode
      // was switched on, and failures, by updating the rows. Both in one transaction when both are there: a
      // crash between them would leave a key failed on the row while its earlier rows of the batch, already
      // on the broker, were not listed (the replay would hold them back behind it and send them again).
      const listed = all.filter((o) => o.insertOnly === true);
      const sent = listed.length === all.length ? [] : all.filter((o) => o.insertOnly !== true);
      const rowsToo = sent.length + failed.length > 0;
      if (listed.length === 0) return { sent: rowsToo ? await recordRows(db, sent, failed) : 0 };
      const from = stream.readingFrom;
      const params = [
        slot,
        plainArray(listed.map((o) => o.ref)),
        plainArray(listed.map((o) => o.partition)),
        plainArray(listed.map((o) => o.offset)),
        plainArray(listed.map((o) => o.commitEnd)),
        batch?.endLsn ?? null,
        from !== undefined && from !== failedFrom ? from : null,
      ];
      const both = async (on: SqlExecutor) => {
        const { rows } = await on.query<{ sent: number }>(sql.recordBatch, params);
        const updated = rowsToo ? await recordRows(on, sent, failed) : 0;
        return { sent: updated + Number(rows[0]?.sent ?? 0) };
      };
      try {
        return await (rowsToo ? db.transaction(both) : both(db));
      } catch (error) {
        failedFrom = from;
        throw error;
      }
    },
    async heldKeys() {
      const { rows } = await db.query<{ msg_key: string }>(sql.heldKeys);
      return new Set(rows.map((r) => r.msg_key));
    },
  };

  return {
    slot,
    publication,
    stream,
    ledger,
    async createSlot(actor = 'zeroloss relay --create-slot', options: { insertOnly?: boolean } = {}) {
      await requireSlotTable(db, s, schema);
      // As createShards refuses beside this slot: both would stream every row, and each would send and
      // list it under its own slot (the replay lookup is per slot), so every row went out twice.
      const { rows: shardSlots } = await db.query<{ slot: string }>(walShardSql(s).shards);
      if (shardSlots.length > 0) {
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `the outbox is sharded (slots ${shardSlots.map((r) => r.slot).join(', ')}): create or change its slots with \`relay --mode wal --create-slot --shards N\`, or drop the shards first (relay --mode wal --drop-slot) to use one slot`,
          { details: { field: 'shards', slots: shardSlots.map((r) => r.slot) } },
        );
      }
      const { rows: existing } = await db.query<{ active: boolean; lost: boolean }>(sql.slotInfo, [slot]);
      // A lost slot (its WAL removed past max_slot_wal_keep_size) never streams again, recorded or not: it is
      // made anew below, with its hand-over (as createShards does for a lost shard's slot).
      const inPlace = existing.length > 0 && existing[0]?.lost !== true && (await slotRecorded());
      // One single slot per outbox; looked at again under the creation lock below.
      if (!inPlace) await refuseSecondSlot(db, sql, schema, slot);
      if ((await db.query(sql.publicationExists, [publication])).rows.length === 0) await db.query(sql.createPublication);
      // Run under the slot's creation lock (taken at the start of each transaction below): a relay finding the slot
      // meanwhile stands by, and the switch is refused while one reads it (insert-only-mode.ts).
      const readers = {
        slots: [slot],
        refuse: () =>
          new ZerolossError(
            'ZL_INVALID_CONFIG',
            `replication slot ${slot} is being read: stop its relays before switching the outbox to insert-only, then start relays of this release`,
            { details: { slot, field: 'insert-only' } },
          ),
      };
      const switchOn = (tx: SqlExecutor) => applyInsertOnly(tx, sql, options.insertOnly, readers);
      if (inPlace) {
        const insertOnly = await db.transaction(async (tx) => {
          await tx.query(sql.slotCreationLock, [slot]);
          return switchOn(tx);
        });
        return { created: false, handedOver: 0, insertOnly };
      }
      // One transaction under the creation lock: a relay finding the slot waits until the rows it cannot
      // stream are handed over (wal-sql.ts slotCreationLock), and the hand-over is recorded with it
      // (migration 20). The slot itself is not transactional: if this run dies before the commit, the
      // slot stays without a record, relays refuse it, and the next --create-slot makes it anew (a failed
      // hand-over also drops it at once, below, when it can).
      let created = false;
      try {
        return await db.transaction(async (tx) => {
          await tx.query(sql.readCommitted);
          // Another creation under another name waits here until this one committed its record, and then
          // finds this slot (refuseSecondSlot below); taken before the slot's own lock, in every creation.
          await tx.query(sql.outboxSlotLock, [schema]);
          await tx.query(sql.slotCreationLock, [slot]);
          // Looked at again under the lock: another --create-slot may have finished meanwhile.
          const { rows: now } = await tx.query<{ active: boolean; lost: boolean }>(sql.slotInfo, [slot]);
          if (now[0]) {
            const lost = now[0].lost === true;
            if (!lost && (await tx.query<{ recorded: boolean }>(sql.slotRecorded, [slot])).rows[0]?.recorded === true) {
              return { created: false, handedOver: 0, insertOnly: await switchOn(tx) };
            }
            if (now[0].active && lost) {
              throw new ZerolossError(
                'ZL_INVALID_CONFIG',
                `replication slot ${slot} lost the WAL it needs (wal_status 'lost') but a relay still holds it: stop the relays, then run --create-slot again`,
                { details: { slot } },
              );
            }
            if (now[0].active) {
              throw new ZerolossError(
                'ZL_INVALID_CONFIG',
                `replication slot ${slot} has no recorded hand-over but is being read (by a relay older than migration 20?): stop it, then run --create-slot again`,
                { details: { slot } },
              );
            }
          }
          await refuseSecondSlot(tx, sql, schema, slot);
          // Not transactional: a lost slot stays dropped if this transaction fails (its record then names
          // no slot, and relays say the slot is missing); an unrecorded one was nobody's to read.
          if (now[0]) await tx.query(sql.dropSlot, [slot]);
          await tx.query(sql.createSlot, [slot]);
          created = true;
          // Enqueues committed before the slot's consistent point but not visible yet (waiting for a
          // synchronous standby) are in neither the stream nor the hand-over's snapshot until this returns.
          await awaitOutboxWriters(tx, sql);
          const { rows } = await tx.query<{ n: number }>(sql.handOver, [actor]);
          const handedOver = Number(rows[0]?.n ?? 0);
          // A slot dropped behind the relays' back (or lost) leaves its record, under either mode's name.
          await tx.query(sql.forgetSlot, [slot]);
          await tx.query(sql.recordSlot, [slot, handedOver]);
          return { created: true, handedOver, insertOnly: await switchOn(tx) };
        });
      } catch (error) {
        if (created) await db.query(sql.dropSlot, [slot]).catch(() => {});
        throw error;
      }
    },
    async dropSlot(actor = 'zeroloss relay --drop-slot') {
      const { rows } = await db.query<{ active: boolean }>(sql.slotInfo, [slot]);
      if (rows[0]?.active) {
        throw new ZerolossError('ZL_INVALID_CONFIG', `replication slot ${slot} is being read by a relay: stop the relays, then drop it`, {
          details: { slot },
        });
      }
      const { rows: tables } = await db.query<{ slots: boolean; batches: boolean }>(sql.dropTables, [
        `${s}.wal_slot`,
        `${s}.outbox_wal_batch`,
        `${s}.wal_shard`,
      ]);
      // One transaction: the record goes, and with the outbox's last slot the insert-only mode (new rows go to
      // the polling path, and those the stream had not recorded as sent are handed to it), then the slot. The
      // mode stays while another slot of the outbox exists (another single slot, its shards'): it still
      // streams. If the drop fails (a relay took the slot meanwhile) nothing of it happened. Read committed:
      // the hand-over must see the enqueues the ALTER waited for (see readCommitted).
      return db.transaction(async (tx) => {
        await tx.query(sql.readCommitted);
        if (tables[0]?.slots) await tx.query(sql.forgetSlot, [slot]);
        // Migration 21 brought the mode; a schema with it has every table outboxSlots reads.
        if (tables[0]?.batches && (await outboxSlots(tx, sql, schema)).every((x) => x.slot === slot)) {
          await leaveInsertOnly(tx, sql, actor);
        }
        if (rows.length === 0) return false;
        await tx.query(sql.dropSlot, [slot]);
        return true;
      });
    },
    insertOnly: () => insertOnlyOn(db, sql),
  };
}
