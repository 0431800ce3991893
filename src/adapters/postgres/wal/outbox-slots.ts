import { ZerolossError } from '../../../core/errors.ts';
import type { SqlExecutor } from '../../../ports/sql-executor.ts';
import type { walSql } from './wal-sql.ts';

type WalSql = ReturnType<typeof walSql>;

export interface OutboxSlot {
  slot: string;
  /** One of its shards' slots (wal_shard), not a single slot. */
  shard: boolean;
}

/**
 * The slots of the outbox of `schema` that exist now, its shards' included, never another schema's
 * (wal-sql.ts `outboxSlots` says how they are told apart). Needs migration 21: callers run it only on a
 * schema that has `outbox_wal_batch`.
 */
export async function outboxSlots(on: SqlExecutor, sql: WalSql, schema: string): Promise<OutboxSlot[]> {
  const { rows } = await on.query<{ slot: string; shard: boolean }>(sql.outboxSlots, [`zeroloss_${schema}`]);
  return rows.map((r) => ({ slot: r.slot, shard: r.shard === true }));
}

/** The command that drops single slot `slot` of the outbox of `schema`. */
export function dropSlotCommand(schema: string, slot: string): string {
  return slot === `zeroloss_${schema}` ? 'relay --mode wal --drop-slot' : `relay --mode wal --drop-slot --slot ${slot}`;
}

/**
 * Refuses a single slot `slot` beside another single slot of the outbox: both would stream every row, each
 * relay would send it and list it under its own slot (the replay lookup is per slot), so every message
 * went out twice and was counted as a first send twice, and dropping one of them left the insert-only mode
 * while the other still streamed.
 */
export async function refuseSecondSlot(on: SqlExecutor, sql: WalSql, schema: string, slot: string): Promise<void> {
  const others = (await outboxSlots(on, sql, schema)).filter((x) => !x.shard && x.slot !== slot).map((x) => x.slot);
  if (others.length === 0) return;
  throw new ZerolossError(
    'ZL_INVALID_CONFIG',
    `the outbox streams through slot ${others.join(', ')} already: a second slot ${slot} would stream every row again and send each ` +
      `message twice. Keep using ${others.length === 1 ? 'that slot' : 'one of them'}, or drop ${others.length === 1 ? 'it' : 'them'} first ` +
      `(${others.map((x) => dropSlotCommand(schema, x)).join('; ')}), then create ${slot}`,
    { details: { field: 'slot', slot, slots: others } },
  );
}
