import { ZerolossError } from '../../../core/errors.ts';
import { quoteIdent } from '../../../core/identifier.ts';
import type { RelaySource } from '../../../ports/outbox-store.ts';
import type { Database, SqlExecutor } from '../../../ports/sql-executor.ts';
import type { WalShard, WalShardSet } from '../../../ports/wal-shards.ts';
import { postgresWal } from './postgres-wal.ts';
import { ignoreUndefinedTable, isUndefinedTable, requireSlotTable } from './wal-slot-table.ts';
import { walShardSql } from './wal-shard-sql.ts';
import { walSql } from './wal-sql.ts';
import { applyInsertOnly, awaitOutboxWriters, insertOnlyOn, leaveInsertOnly } from './insert-only-mode.ts';
import { dropSlotCommand, outboxSlots } from './outbox-slots.ts';

/** More shards than this would mean as many walsenders, each decoding the whole WAL. */
export const MAX_WAL_SHARDS = 64;

export interface PostgresWalShards extends WalShardSet {
  /**
   * Creates N shards (publications with a row filter, one slot each, their rows in `wal_shard`) and hands
   * each shard's still-unsent rows to the polling path, or creates again the slots of existing shards that
   * are missing. A different N than the existing one is refused unless nothing is left to stream and no
   * relay reads a shard. Only ever called when asked.
   */
  createShards(
    shards: number,
    actor?: string,
    options?: { insertOnly?: boolean },
  ): Promise<{ created: string[]; handedOver: number; dropped: string[] }>;
  /**
   * Drops every shard's slot and publication and forgets the shards; resolves to the slots dropped. The
   * outbox leaves the insert-only mode, its rows still in the streams going to the polling path.
   */
  dropShards(actor?: string): Promise<string[]>;
}

interface ShardRow {
  shard: number;
  shards: number;
  slot: string;
  publication: string;
}

/** `store` is a Postgres store bundle (`postgres(…)`), as for `postgresWal`. */
export function postgresWalShards(
  store: { db: Database; schema: string; relaySource: RelaySource; kind?: string },
  options: { url: string },
): PostgresWalShards {
  const schema = store.schema;
  const s = quoteIdent(schema, 'schema');
  const sql = walShardSql(s);
  const single = walSql(s, { publication: `zeroloss_${schema}_outbox` });
  const db = store.db;
  const names = (shard: number) => {
    const slot = `zeroloss_${schema}_s${shard}`;
    const publication = `zeroloss_${schema}_outbox_s${shard}`;
    quoteIdent(slot, 'slot');
    quoteIdent(publication, 'publication');
    return { slot, publication };
  };
  // The shards' polling path is the single slot's: it claims failed rows of the whole outbox.
  const retrySource = postgresWal(store, { url: options.url }).ledger.retrySource;

  async function rows(): Promise<ShardRow[]> {
    try {
      return (await db.query<ShardRow>(sql.shards)).rows.map((r) => ({ ...r, shard: Number(r.shard), shards: Number(r.shards) }));
    } catch (error) {
      // Before migration 18 there are no shards.
      if (isUndefinedTable(error)) return [];
      throw error;
    }
  }

  async function list(): Promise<WalShard[]> {
    const known = await rows();
    if (known.length === 0) return [];
    const slots = new Map(
      (await db.query<{ shard: number; exists: boolean; lost: boolean; active: boolean; holder: string | null }>(sql.shardSlots)).rows.map(
        (r) => [Number(r.shard), r],
      ),
    );
    return known.map((r) => {
      const slot = slots.get(r.shard);
      return {
        ...r,
        exists: slot?.exists === true,
        lost: slot?.lost === true,
        active: slot?.active === true,
        holder: slot?.holder || null,
      };
    });
  }

  /** Slots whose hand-over committed (migration 20); before it there is no record, and every slot counts. */
  async function recordedSlots(): Promise<{ has(slot: string): boolean }> {
    try {
      const { rows: recorded } = await db.query<{ slot_name: string }>(sql.recordedSlots);
      return new Set(recorded.map((r) => r.slot_name));
    } catch (error) {
      if (!isUndefinedTable(error)) throw error;
      return { has: () => true };
    }
  }

  async function dropShards(actor = 'zeroloss relay --drop-slot', options: { keepMode?: boolean } = {}): Promise<string[]> {
    const dropped: string[] = [];
    const shards = await rows();
    if (shards.length === 0) return dropped;
    const read = (await list()).filter((x) => x.active).map((x) => x.slot);
    if (read.length > 0) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `shard slot(s) ${read.join(', ')} are being read by relays: stop them, then drop the shards`,
        {
          details: { slots: read },
        },
      );
    }
    const { rows: tables } = await db.query<{ slots: boolean; batches: boolean }>(single.dropTables, [
      `${s}.wal_slot`,
      `${s}.outbox_wal_batch`,
      `${s}.wal_shard`,
    ]);
    // As the single slot's drop (postgres-wal.ts): one transaction, read committed, the insert-only mode
    // left with the last slot (unless the shards are made anew at once: `keepMode`) and the rows still in
    // the streams handed to the polling path; a slot a relay took meanwhile fails it whole.
    await db.transaction(async (tx) => {
      await tx.query(single.readCommitted);
      for (const r of shards) if (tables[0]?.slots) await tx.query(single.forgetSlot, [r.slot]);
      // A single slot of the outbox cannot exist beside shards (createShards refuses it), but if it did it
      // would still stream: the mode stays while one exists. Migration 21 brought the mode; a schema with it
      // has every table outboxSlots reads.
      if (tables[0]?.batches && options.keepMode !== true && (await outboxSlots(tx, single, schema)).every((x) => x.shard)) {
        await leaveInsertOnly(tx, single, actor);
      }
      for (const r of shards) {
        if ((await tx.query(single.slotInfo, [r.slot])).rows.length > 0) {
          await tx.query(single.dropSlot, [r.slot]);
          dropped.push(r.slot);
        }
      }
    });
    for (const r of shards) await db.query(sql.dropPublication(quoted(r.publication)));
    await db.query(sql.deleteShards).catch((error: { code?: unknown }) => {
      if (error.code !== '42P01') throw error;
    });
    return dropped;
  }

  return {
    retrySource,
    list,
    open(shard, holder) {
      const wal = postgresWal(store, { url: options.url, slot: shard.slot, publication: shard.publication, applicationName: holder });
      return { stream: wal.stream, ledger: wal.ledger };
    },
    async heartbeat(member, timeoutMs) {
      const { rows: live } = await db.query<{ member: string | null; seen_ms: number | null; now_ms: number }>(sql.heartbeat, [
        member,
        timeoutMs,
      ]);
      const now = Number(live[0]?.now_ms);
      const members = new Map<string, number>([[member, now]]);
      for (const r of live) if (r.member !== null) members.set(r.member, Number(r.seen_ms));
      return { now, members };
    },
    async leave(member) {
      await db.query(sql.leave, [member]);
    },
    dropShards,
    async createShards(shards, actor = 'zeroloss relay --create-slot', options = {}) {
      if (!Number.isInteger(shards) || shards < 1 || shards > MAX_WAL_SHARDS) {
        throw new ZerolossError('ZL_INVALID_CONFIG', `--shards must be an integer from 1 to ${MAX_WAL_SHARDS}, not ${shards}`, {
          details: { field: 'shards' },
        });
      }
      await requireSlotTable(db, s, schema);
      // Its default one, or one made under another name (`--slot`).
      const singles = (await outboxSlots(db, single, schema)).filter((x) => !x.shard).map((x) => x.slot);
      if (singles.length > 0) {
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `slot(s) ${singles.join(', ')} (one slot for the whole outbox) exist: drop them first (${singles.map((x) => dropSlotCommand(schema, x)).join('; ')}), or both would stream the same rows`,
          { details: { field: 'shards', slots: singles } },
        );
      }
      let dropped: string[] = [];
      const existing = await list();
      const reading = existing.filter((x) => x.active).map((x) => x.slot);
      const readWhileSwitching = (read: string[]) =>
        new ZerolossError(
          'ZL_INVALID_CONFIG',
          `shard slot(s) ${read.join(', ')} are being read: stop their relays before switching the outbox to insert-only, then start relays of this release`,
          { details: { slots: read, field: 'insert-only' } },
        );
      // As for the single slot: relays reading now may be of a release before the mode. Refused here before
      // anything changes (a count change drops the old shards first), and again under the slots' creation
      // locks in the switch's transaction (applyInsertOnly).
      if (options.insertOnly === true && reading.length > 0 && !(await insertOnlyOn(db, single))) throw readWhileSwitching(reading);
      if (existing.length > 0 && existing[0]?.shards !== shards) {
        // Another N moves keys between slots: a key's rows not yet streamed by its old slot would race its
        // new rows in another one. Only with nothing unsent and no reader is there nothing to race.
        const unsent = Number((await db.query<{ n: number }>(sql.unsent)).rows[0]?.n ?? 0);
        const read = existing.filter((x) => x.active).map((x) => x.slot);
        if (unsent > 0 || read.length > 0) {
          throw new ZerolossError(
            'ZL_INVALID_CONFIG',
            `the outbox has ${existing[0]?.shards} shard(s); changing to ${shards} needs a drained outbox and no relay running ` +
              `(now: ${unsent} unsent or failed row(s), slot(s) read: ${read.join(', ') || 'none'}). Stop the relays, let the ` +
              'polling path finish, then run --create-slot --shards again',
            { details: { field: 'shards' } },
          );
        }
        // The count changes with nothing in the streams (checked above): the mode stays as it was.
        dropped = await dropShards(actor, { keepMode: true });
      }
      const current = existing.length > 0 && existing[0]?.shards === shards ? existing : [];
      const recorded = await recordedSlots();
      const wanted = Array.from({ length: shards }, (_, i) => {
        const known = current.find((x) => x.shard === i);
        // A slot whose hand-over was never recorded is the leftover of a --create-slot that died before it
        // committed (migration 20): relays refuse it, and it is made anew here.
        const unrecorded = known?.exists === true && !known.lost && !recorded.has(known.slot);
        return {
          shard: i,
          ...names(i),
          missing: known === undefined || !known.exists || known.lost || unrecorded,
          known,
          lost: known?.lost === true,
        };
      }).filter((x) => x.missing);
      // Switched on with every shard's slot in place, last in the transaction (its lock holds enqueues back
      // until the commit); rows inserted before it with the old default are streamed and recorded by updates.
      // Every shard's slot, each creation lock taken first in the switch's transaction: a relay opening any of
      // them meanwhile stands by until it commits (insert-only-mode.ts applyInsertOnly).
      const slots = Array.from({ length: shards }, (_, i) => names(i).slot);
      const switchOn = (tx: SqlExecutor) => applyInsertOnly(tx, single, options.insertOnly, { slots, refuse: readWhileSwitching });
      if (wanted.length === 0) {
        await db.transaction(async (tx) => {
          for (const slot of slots) await tx.query(single.slotCreationLock, [slot]);
          await switchOn(tx);
        });
        return { created: [], handedOver: 0, dropped };
      }
      // A lost slot cannot stream again: it is dropped and made anew, its shard's unsent rows handed over.
      for (const w of wanted.filter((x) => x.lost)) {
        await db.query(single.forgetSlot, [w.slot]).catch(ignoreUndefinedTable);
        await db.query(single.dropSlot, [w.slot]);
        dropped.push(w.slot);
      }
      // Publications first, outside the transaction: a slot only sees publications that existed at its start.
      for (const w of wanted) {
        if ((await db.query(single.publicationExists, [w.publication])).rows.length === 0) {
          await db.query(sql.createPublication(w.publication, w.shard, shards));
        }
      }
      const made: string[] = [];
      try {
        return await db.transaction(async (tx) => {
          await tx.query(single.readCommitted);
          await tx.query(sql.lockShards);
          // Another --create-slot may have committed the same shards while this one waited for the lock.
          if (current.length === 0 && (await tx.query(sql.shards)).rows.length > 0) return { created: [], handedOver: 0, dropped };
          // Every slot is created before the first write: a transaction that wrote cannot create a slot. The
          // creation locks of the slots made now, and when switching to insert-only those of the others too.
          const locked = options.insertOnly === true ? slots : wanted.map((w) => w.slot);
          for (const slot of locked) await tx.query(single.slotCreationLock, [slot]);
          const creating: typeof wanted = [];
          for (const w of wanted) {
            const { rows: slotNow } = await tx.query<{ active: boolean }>(single.slotInfo, [w.slot]);
            if (slotNow[0]) {
              if (w.known === undefined) {
                throw new ZerolossError('ZL_INVALID_CONFIG', `slot ${w.slot} exists but is not a recorded shard: drop it first`, {
                  details: { slot: w.slot },
                });
              }
              // Looked at again under the lock: another --create-slot may have made it meanwhile.
              if ((await tx.query<{ recorded: boolean }>(single.slotRecorded, [w.slot])).rows[0]?.recorded === true) continue;
              if (slotNow[0].active) {
                throw new ZerolossError(
                  'ZL_INVALID_CONFIG',
                  `slot ${w.slot} has no recorded hand-over but is being read (by a relay older than migration 20?): stop it, then run --create-slot again`,
                  { details: { slot: w.slot } },
                );
              }
              await tx.query(single.dropSlot, [w.slot]);
              dropped.push(w.slot);
            }
            await tx.query(single.createSlot, [w.slot]);
            made.push(w.slot);
            creating.push(w);
          }
          // After the last slot, before the first hand-over (wal-sql.ts lockOutboxWriters): enqueues committed
          // before a slot's consistent point but not visible yet are then visible to the hand-over.
          let moved: Array<{ shard: number; n: number }> = [];
          if (creating.length > 0) {
            await awaitOutboxWriters(tx, single);
            for (const w of creating) {
              if (w.known === undefined) await tx.query(sql.insertShard, [w.shard, shards, w.slot, w.publication]);
            }
            const shardsMade = creating.map((w) => w.shard);
            moved = (await tx.query<{ shard: number; n: number }>(sql.handOver(shardsMade, shards), [actor])).rows;
          }
          let handedOver = 0;
          for (const w of creating) {
            const n = Number(moved.find((r) => Number(r.shard) === w.shard)?.n ?? 0);
            // A slot dropped behind the relays' back leaves its record, under either mode's name.
            await tx.query(single.forgetSlot, [w.slot]);
            await tx.query(single.recordSlot, [w.slot, n]);
            handedOver += n;
          }
          await switchOn(tx);
          return { created: [...made], handedOver, dropped };
        });
      } catch (error) {
        for (const slot of made) await db.query(single.dropSlot, [slot]).catch(() => {});
        throw error;
      }
    },
  };
}

/** A publication name read back from wal_shard, checked again before it is spliced. */
function quoted(name: string): string {
  quoteIdent(name, 'publication');
  return name;
}
