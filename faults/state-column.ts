/**
 * The state-column source under the fault suite (`--source state-column`): instead of enqueuing into the
 * outbox, the workload writes award rows of the lottery's `user_strategy_export`, which carries its own
 * send state (`mq_state`), in the business transaction; the relays are `zeroloss relay --config-file
 * <settings> --only-sources` with the table declared as an operator declares it (docs/operations.md).
 * The checker counts what was committed from that table, and a key's order is the table's row order.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type pg from 'pg';
import { stableId } from '../src/adapters/postgres/state-column-source.ts';
import type { CommitLedger, LedgerReader } from './checker.ts';
import { FX_TYPE, type FxPayload } from './workload.ts';

/** Where the relays' messages come from: the outbox table (default) or a state-column business table. */
export type SourceKind = 'outbox' | 'state-column';
export const SOURCE_KINDS: readonly SourceKind[] = ['outbox', 'state-column'];

/** The declared source's name: its rows' message ids are stableId(name, row id), their producer id too. */
export const AWARD_SOURCE = 'fx_award';

/**
 * Scenarios that run with the state-column source, and why the others do not. The source changes the
 * relay's side only: what it claims, how it records a row sent, where the message is built.
 */
const RUNS = new Set([
  'baseline',
  'relay-kill',
  'relay-zombie',
  'postgres-restart',
  'network-postgres',
  'kafka-leader-kill',
  'kafka-rolling-restart',
  'kafka-pause',
  'network-kafka',
]);
const CONSUMER_SIDE = 'its faults are on the consumer side, which the source does not change';
const PRODUCER_CLOCK = "its fault is the outbox producer's clock; award rows are written by plain SQL and the relay builds their messages";
const REFUSED: Record<string, string> = {
  'consumer-kill': CONSUMER_SIDE,
  'consumer-zombie': CONSUMER_SIDE,
  'redis-outage': CONSUMER_SIDE,
  'handler-faults': `${CONSUMER_SIDE}; and the award table carries no failure marks for the handler`,
  poison: `${CONSUMER_SIDE}; and the award table carries no failure marks for the handler`,
  mixed: 'it includes handler faults, which the award table cannot mark',
  'clock-step': PRODUCER_CLOCK,
  'clock-step-snowflake': PRODUCER_CLOCK,
  'two-producers': 'its producers are outboxes with their own producer ids; a declared table is one source with one producer id',
};

/** Why `scenario` does not run with the state-column source, or undefined when it does. */
export function refusedWithStateColumn(scenario: string): string | undefined {
  if (RUNS.has(scenario)) return undefined;
  return REFUSED[scenario] ?? 'not adapted to the state-column source (yet)';
}

/** The settings file the relays read: the award table declared as in docs/operations.md. */
export function writeSettingsFile(schema: string, topic: string): string {
  const file = path.join(tmpdir(), `zl-fx-${schema}.json`);
  const settings = {
    sources: [
      {
        name: AWARD_SOURCE,
        table: 'user_strategy_export',
        tableSchema: schema,
        idColumn: 'id',
        keyColumn: 'u_id',
        stateColumn: 'mq_state',
        createdColumn: 'create_time',
        modifiedColumn: 'modified_time',
        topic,
        type: FX_TYPE,
        payload: { orderId: 'order_id' },
      },
    ],
  };
  writeFileSync(file, JSON.stringify(settings, null, 2));
  return file;
}

/**
 * One business transaction's writes: an award row per order, nothing else. The key's lock is taken first,
 * as an application must when a key's messages are to go in its commit order: the relay sends a key's rows
 * in id order, and ids are drawn at insert, so two transactions of one key that commit in the other order
 * than they drew their ids would be sent out of commit order (bigserial promises nothing about commits).
 * Returns the rows' message ids.
 */
export async function writeAwards(client: pg.PoolClient, schema: string, key: string, payloads: FxPayload[]): Promise<string[]> {
  const s = `"${schema}"`;
  await client.query('select pg_advisory_xact_lock(hashtext($1))', [key]);
  const ids: string[] = [];
  for (const payload of payloads) {
    const { rows } = await client.query<{ id: string }>(
      `insert into ${s}.user_strategy_export (u_id, activity_id, order_id, strategy_id, award_id, award_type, award_name)
       values ($1, 1, $2, 7, 'A003', 'coupon', '50-off coupon') returning id::text as id`,
      [key, `order-${payload.orderId}`],
    );
    ids.push(stableId(AWARD_SOURCE, rows[0]?.id ?? ''));
  }
  return ids;
}

/** A row id's message id (stableId of the source's name and the row id), hashed once per process. */
const messageIds = new Map<string, string>();
function messageIdOf(rowId: string): string {
  let id = messageIds.get(rowId);
  if (id === undefined) {
    id = stableId(AWARD_SOURCE, rowId);
    messageIds.set(rowId, id);
  }
  return id;
}

/**
 * The award table as the checker reads it: its rows are what committed, its ids each key's order.
 *
 * `outstanding` reads every award row into the harness and turns each row id into its message id. Taken at
 * every 250 ms poll of the drain, at 100,000 rows that took most of a core from the consumers the drain waits
 * for (relay-zombie at 100,000 drained at 15-40 messages/s and hit the drain's bound with every message on
 * the topic); so the drain takes it at most every 5 s (`progressEveryMs`), and a row id is hashed once.
 */
export const stateColumnLedger: LedgerReader = {
  async ledger(pool, schema): Promise<CommitLedger> {
    const { rows } = await pool.query<{ id: string; u_id: string; mq_state: number }>(
      `select id::text as id, u_id, mq_state from "${schema}".user_strategy_export`,
    );
    return {
      committed: new Map(rows.map((r) => [messageIdOf(r.id), null])),
      order: new Map(rows.map((r) => [messageIdOf(r.id), { key: r.u_id, seq: Number(r.id), producer: AWARD_SOURCE }])),
      // The message is the row itself: nothing can commit without the other.
      outboxMismatch: 0,
      unsent: rows.filter((r) => Number(r.mq_state) !== 1).length,
    };
  },
  async outstanding(pool, schema) {
    const s = `"${schema}"`;
    // Message ids are computed from row ids here, not in SQL, so the count of rows without an outcome is too.
    const { rows } = await pool.query<{ id: string; mq_state: number }>(`select id::text as id, mq_state from ${s}.user_strategy_export`);
    const done = new Set(
      (
        await pool.query<{ message_id: string }>(
          `select message_id from ${s}.fx_effect_log union select message_id from ${s}.dead_letter where message_id is not null`,
        )
      ).rows.map((r) => r.message_id),
    );
    return {
      pending: rows.filter((r) => !done.has(messageIdOf(r.id))).length,
      unsent: rows.filter((r) => Number(r.mq_state) !== 1).length,
    };
  },
  progressEveryMs: 5_000,
};
