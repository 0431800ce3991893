import type pg from 'pg';
import type { Outbox } from '../src/outbox/outbox.ts';
import type { SqlExecutor } from '../src/ports/sql-executor.ts';

/** The one message type of the suite's business: an order whose effect is applied to its key's account. */
export const FX_TYPE = 'fx.order';

export type FailKind = 'transient' | 'permanent' | 'poison';

export interface FxPayload {
  orderId: number;
  /** How the consumer's handler should misbehave for this message (see consumer-worker.ts). */
  fail?: FailKind;
  /** For 'transient': how many attempts fail before one succeeds; below the retry limit, so it must succeed. */
  times?: number;
}

/**
 * The business tables: fx_order is the business row written with the outbox message (so "committed" is
 * counted from business rows, not from zeroloss's own table), fx_account the effect row the handler
 * updates, fx_effect_log the effect log without a unique key (a double effect stays visible).
 */
export function businessSchemaSql(schema: string): string {
  const s = `"${schema}"`;
  return `
    create table ${s}.fx_order (
      id bigserial primary key,
      message_id text not null,
      msg_key text not null,
      fail text,
      created_at timestamptz not null default now()
    );
    create table ${s}.fx_account (
      msg_key text primary key,
      applied integer not null,
      last_seq integer not null
    );
    create table ${s}.fx_effect_log (
      id bigserial primary key,
      message_id text not null,
      msg_key text not null,
      seq integer not null,
      worker text not null,
      applied_at timestamptz not null default clock_timestamp()
    );
    create index fx_effect_log_message on ${s}.fx_effect_log (message_id);
    create index fx_order_message on ${s}.fx_order (message_id);`;
}

/** The business effect every consumer of the suite applies in its effect transaction: its key's account, and the log row. */
export async function applyFxEffect(
  tx: SqlExecutor,
  schema: string,
  m: { id: string; key: string; seq: number },
  worker: string,
): Promise<void> {
  await tx.query(
    `insert into "${schema}".fx_account (msg_key, applied, last_seq) values ($1, 1, $2)
     on conflict (msg_key) do update set applied = fx_account.applied + 1, last_seq = excluded.last_seq`,
    [m.key, m.seq],
  );
  await tx.query(`insert into "${schema}".fx_effect_log (message_id, msg_key, seq, worker) values ($1, $2, $3, $4)`, [
    m.id,
    m.key,
    m.seq,
    worker,
  ]);
}

export interface WorkloadOptions {
  pool: pg.Pool;
  /** One outbox per producer; each transaction enqueues through one of them, picked at random. */
  outboxes: Outbox[];
  schema: string;
  topic: string;
  /** Messages to commit (rolled-back ones are extra). */
  messages: number;
  keys: number;
  /** Concurrent business transactions. */
  workers: number;
  /** Share of transactions rolled back on purpose after enqueueing. */
  rollbackRate: number;
  /** Committed messages per second the workload aims at (it goes slower when the database is slow). */
  ratePerSecond: number;
  /** Shares of messages that fail transiently or permanently in the handler; poison is an exact count. */
  failures: { transient: number; permanent: number; poison: number };
  random: () => number;
  /** Stops early (the run is being torn down). */
  signal?: AbortSignal;
  /**
   * The business writes of one transaction, returning its messages' ids in order; default: each order
   * enqueued through one of `outboxes` with its fx_order row (the state-column source writes award rows).
   */
  write?: (client: pg.PoolClient, key: string, payloads: FxPayload[]) => Promise<string[]>;
}

export interface WorkloadResult {
  /** Ids whose transaction the client saw commit. */
  committed: Set<string>;
  /** Ids whose transaction was rolled back on purpose: none of them may ever have an effect. */
  rolledBack: Set<string>;
  /** Ids whose commit outcome the client never learned (connection lost during commit): the database decides. */
  unknown: Set<string>;
  failedTransactions: number;
  durationMs: number;
}

/**
 * Concurrent business transactions, each writing 1-3 orders of one key with their outbox messages (through
 * one of the producers' outboxes), paced
 * at `ratePerSecond`. Transactions that fail (database restarting, connections cut) are retried with new
 * messages until `messages` have committed.
 */
export async function runWorkload(o: WorkloadOptions): Promise<WorkloadResult> {
  const started = Date.now();
  const result: WorkloadResult = { committed: new Set(), rolledBack: new Set(), unknown: new Set(), failedTransactions: 0, durationMs: 0 };
  let remaining = o.messages;
  let issued = 0;
  let orderId = 0;
  const s = `"${o.schema}"`;
  const failure = (): FxPayload['fail'] => {
    const r = o.random();
    if (r < o.failures.permanent) return 'permanent';
    if (r < o.failures.permanent + o.failures.transient) return 'transient';
    return undefined;
  };
  // Poison messages go into committing transactions once this many messages were taken, so exactly
  // `poison` of them commit (unless a commit's outcome is lost to a database fault).
  const poisonAt = Array.from({ length: o.failures.poison }, () => Math.floor(o.messages * (0.1 + 0.7 * o.random()))).sort((a, b) => a - b);
  const worker = async () => {
    while (remaining > 0 && !o.signal?.aborted) {
      const count = Math.min(remaining, 1 + Math.floor(o.random() * 3));
      remaining -= count;
      const due = started + (issued * 1000) / o.ratePerSecond;
      issued += count;
      const ahead = due - Date.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
      const rollback = o.random() < o.rollbackRate;
      const key = `key-${Math.floor(o.random() * o.keys)}`;
      const payloads: FxPayload[] = [];
      const poisoned = !rollback && poisonAt.length > 0 && o.messages - remaining >= (poisonAt[0] as number);
      const poisonMark = poisoned ? poisonAt.shift() : undefined;
      for (let i = 0; i < count; i++) {
        if (i === 0 && poisoned) {
          payloads.push({ orderId: ++orderId, fail: 'poison' });
          continue;
        }
        const fail = failure();
        payloads.push({
          orderId: ++orderId,
          ...(fail ? { fail } : {}),
          ...(fail === 'transient' ? { times: 1 + Math.floor(o.random() * 2) } : {}),
        });
      }
      const outbox = o.outboxes[Math.floor(o.random() * o.outboxes.length)] as Outbox;
      const { outcome, ids } = await businessTransaction(o.pool, rollback, async (client, ids) => {
        if (o.write) {
          ids.push(...(await o.write(client, key, payloads)));
          return;
        }
        for (const payload of payloads) {
          const envelope = await outbox.enqueue(client, { topic: o.topic, key, type: FX_TYPE, payload });
          await client.query(`insert into ${s}.fx_order (message_id, msg_key, fail) values ($1, $2, $3)`, [
            envelope.id,
            key,
            payload.fail ?? null,
          ]);
          ids.push(envelope.id);
        }
      });
      recordOutcome(result, outcome, ids);
      if (outcome === 'rolledBack' || outcome === 'failedBeforeCommit') remaining += count;
      if (outcome === 'failedBeforeCommit' && poisonMark !== undefined) poisonAt.unshift(poisonMark);
    }
  };
  await Promise.all(Array.from({ length: o.workers }, worker));
  result.durationMs = Date.now() - started;
  return result;
}

const ignore = () => {};

/** What became of one business transaction's messages, as its client saw it. */
export type TransactionOutcome = 'committed' | 'rolledBack' | 'failedBeforeCommit' | 'unknown';

/**
 * One business transaction on a pool client, as an application runs it: begin, `work` (which pushes the
 * ids of the messages it enqueued), then commit or, when `rollback`, a deliberate rollback. A failure
 * before the commit means nothing committed; a failure during the commit leaves the outcome unknown.
 * After a failure it pauses 50 ms, so a restarting database is not hammered.
 */
export async function businessTransaction(
  pool: pg.Pool,
  rollback: boolean,
  work: (client: pg.PoolClient, ids: string[]) => Promise<void>,
): Promise<{ outcome: TransactionOutcome; ids: string[] }> {
  const ids: string[] = [];
  let client: pg.PoolClient | undefined;
  let phase: 'work' | 'commit' = 'work';
  try {
    client = await pool.connect();
    // As any application must: a checked-out client reports a dying server as an 'error' event.
    client.on('error', ignore);
    await client.query('begin');
    await work(client, ids);
    if (rollback) {
      await client.query('rollback');
    } else {
      phase = 'commit';
      await client.query('commit');
    }
    client.off('error', ignore);
    client.release();
    return { outcome: rollback ? 'rolledBack' : 'committed', ids };
  } catch (error) {
    client?.off('error', ignore);
    client?.release(error as Error);
    await new Promise((r) => setTimeout(r, 50));
    return { outcome: phase === 'commit' ? 'unknown' : 'failedBeforeCommit', ids };
  }
}

/** Adds a transaction's outcome to the workload's tallies. */
export function recordOutcome(
  result: { committed: Set<string>; rolledBack: Set<string>; unknown: Set<string>; failedTransactions: number },
  outcome: TransactionOutcome,
  ids: string[],
): void {
  if (outcome === 'committed') for (const id of ids) result.committed.add(id);
  else if (outcome === 'rolledBack') for (const id of ids) result.rolledBack.add(id);
  else {
    result.failedTransactions++;
    if (outcome === 'unknown') for (const id of ids) result.unknown.add(id);
  }
}
