import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type {
  BacklogStats,
  ClaimedRow,
  DueCheck,
  FailedOutcome,
  MessageState,
  OutboxRow,
  OutboxWriter,
  RelaySource,
  SendStatus,
  SentOutcome,
} from '../../ports/outbox-store.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { outboxSql } from './outbox-sql.ts';
import { queryPrepared } from './prepared-query.ts';

export interface PostgresOutboxStoreOptions {
  schema?: string;
  /**
   * Issue pg_notify on enqueue so a listening relay wakes at commit; default false. Relays poll with a
   * cheap probe anyway; a notifying transaction takes Postgres's global notify lock through its commit,
   * which serialises the commits (and WAL flushes) of all notifying transactions.
   */
  notify?: boolean;
  /** A parked row keeps holding back later rows of its key until released; default true. */
  holdKeyOnParked?: boolean;
  /** Run the enqueue statement as a named prepared statement on node-postgres connections; default true. */
  preparedStatements?: boolean;
}

export function outboxChannel(schema: string): string {
  return `${schema}_outbox`;
}

export interface ClaimRow {
  ref: string;
  message_id: string;
  topic: string;
  msg_key: string;
  headers: Record<string, string>;
  payload: Buffer | Uint8Array;
  attempts: number;
  state: number;
  /** Set when an earlier claim recorded no outcome: when its lease ended (ms since the epoch). */
  prev_lease_until_ms?: number | null;
}

interface SendStatusRow {
  message_id: string;
  state: number;
  topic: string;
  sent_partition: number | null;
  sent_offset: string | null;
  sent_at: Date | string | null;
  last_error: string | null;
  attempts: number;
}

/** The dedicated outbox table on Postgres or PGlite: writer for enqueue, relay source for the relay. */
export class PostgresOutboxStore implements OutboxWriter, RelaySource {
  readonly name: string;
  readonly wakeChannel: string | undefined;
  readonly #db: Database | undefined;
  readonly #sql: ReturnType<typeof outboxSql>;
  readonly #prepared: boolean;
  readonly #schema: string;
  #tablesChecked = false;
  /** When the outbox was last found not insert-only (ms since the epoch); see #refuseInsertOnly. */
  #pollableAt = 0;

  constructor(db: Database | undefined, options: PostgresOutboxStoreOptions = {}) {
    const schema = options.schema ?? 'zeroloss';
    const s = quoteIdent(schema, 'schema');
    this.name = `${schema}.outbox`;
    this.#schema = schema;
    this.#db = db;
    const channel = options.notify === true ? outboxChannel(schema) : undefined;
    quoteIdent(channel ?? 'x', 'channel');
    this.wakeChannel = channel;
    this.#sql = outboxSql(s, { notifyChannel: channel, holdKeyOnParked: options.holdKeyOnParked ?? true });
    this.#prepared = options.preparedStatements ?? true;
  }

  async insert(tx: SqlExecutor, row: OutboxRow, sequencing: boolean): Promise<{ seq: number }> {
    if (!this.#tablesChecked) {
      const { rows } = await tx.query<{ ok: boolean }>(this.#sql.writeTables);
      if (rows[0]?.ok !== true) {
        throw new ZerolossError(
          'ZL_UNKNOWN_TABLE',
          `the outbox tables of schema ${this.#schema} are missing: run \`npx zeroloss migrate\``,
          {
            details: { schema: this.#schema },
          },
        );
      }
      this.#tablesChecked = true;
    }
    const result = await queryPrepared<{ seq: string | number | null; bumped: string | number | null }>(
      tx,
      this.#sql.insert,
      [row.messageId, row.topic, row.key, row.type, row.traceId, row.producerId, JSON.stringify(row.headers), row.payload, sequencing],
      this.#prepared,
    );
    const inserted = result.rows[0];
    if (inserted?.seq === null || inserted?.seq === undefined) {
      // Nothing was inserted, so nothing may be counted: a committed gap would read as a lost message.
      if (inserted?.bumped !== null && inserted?.bumped !== undefined) await tx.query(this.#sql.unbumpSeq, [row.producerId, row.key]);
      throw new ZerolossError('ZL_DUPLICATE_MESSAGE_ID', `message id ${row.messageId} is already in the outbox ${this.name}`, {
        details: { id: row.messageId, outbox: this.name },
      });
    }
    return { seq: Number(inserted.seq) };
  }

  async sendStatus(messageIds: string[]): Promise<SendStatus[]> {
    if (messageIds.length === 0) return [];
    if (!this.#db) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'this outbox store was built for enqueue only; give it a Database to wait for sends', {
        details: { field: 'store' },
      });
    }
    const { rows } = await this.#db.query<SendStatusRow>(this.#sql.sendStatus, [messageIds]);
    return rows.map((r) => ({
      messageId: r.message_id,
      state: Number(r.state) as MessageState,
      topic: r.topic,
      partition: r.sent_partition === null ? undefined : Number(r.sent_partition),
      offset: r.sent_offset === null ? undefined : BigInt(r.sent_offset),
      sentAt: r.sent_at === null ? undefined : new Date(r.sent_at),
      lastError: r.last_error ?? undefined,
      attempts: Number(r.attempts),
    }));
  }

  async claim(owner: string, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
    await this.#refuseInsertOnly();
    const { rows } = await this.#database().query<ClaimRow>(this.#sql.claim, [owner, limit, leaseMs]);
    if (rows.length > 0) return claimedRows(rows);
    // The window of oldest due rows may be all rows of held keys (outbox-sql.ts, `claimPastHeldKeys`). Run
    // after every empty claim, unlike the scans of the WAL path and state-column sources (PastHeldKeys): it
    // costs a few milliseconds unless a key is stuck, and the relay spaces out claims that keep coming back
    // empty unless a row was added, which is when a held key's neighbours must be found at once.
    const past = await this.#database().query<ClaimRow>(this.#sql.claimPastHeldKeys, [owner, limit, leaseMs]);
    return claimedRows(past.rows);
  }

  async markSent(owner: string, sent: SentOutcome[]): Promise<void> {
    if (sent.length === 0) return;
    await this.#database().query(this.#sql.markSent, [
      sent.map((o) => o.ref),
      sent.map((o) => o.partition ?? null),
      sent.map((o) => (o.offset === undefined ? null : o.offset.toString())),
      owner,
    ]);
  }

  async markFailed(owner: string, failed: FailedOutcome[]): Promise<string[]> {
    if (failed.length === 0) return [];
    const { rows } = await this.#database().query<{ message_id: string; to_state: number }>(this.#sql.markFailed, [
      failed.map((f) => f.ref),
      failed.map((f) => (f.action === 'park' ? 3 : 2)),
      failed.map((f) => (f.action === 'release' ? null : f.error)),
      failed.map((f) => f.delayMs),
      failed.map((f) => f.charge && f.action !== 'release'),
      failed.map((f) => f.action === 'release'),
      owner,
    ]);
    return rows.filter((r) => Number(r.to_state) === 3).map((r) => r.message_id);
  }

  async anyDue(): Promise<DueCheck> {
    await this.#refuseInsertOnly();
    const { rows } = await this.#database().query<{ due: boolean; newest: string | null }>(this.#sql.anyDue);
    return { due: rows[0]?.due === true, newest: rows[0]?.newest ?? undefined };
  }

  async backlog(): Promise<BacklogStats> {
    const { rows } = await this.#database().query<{
      pending: number;
      failed: number;
      parked: number;
      oldest_ms: number;
      next_due_ms: number | null;
    }>(this.#sql.backlog);
    const r = rows[0];
    return {
      pending: Number(r?.pending ?? 0),
      failed: Number(r?.failed ?? 0),
      parked: Number(r?.parked ?? 0),
      oldestUnsentAgeMs: Math.max(0, Number(r?.oldest_ms ?? 0)),
      nextDueInMs: r?.next_due_ms === null || r?.next_due_ms === undefined ? undefined : Math.max(0, Number(r.next_due_ms)),
    };
  }

  /**
   * An insert-only outbox (the WAL relay's mode, docs/wal-relay.md) has its new rows in state 1, which this
   * relay never claims: polling it would send nothing and report nothing pending. Refused loudly instead
   * (the relay reports the error every round), looked at again at most every 10 s.
   */
  async #refuseInsertOnly(): Promise<void> {
    if (Date.now() - this.#pollableAt < 10_000) return;
    const { rows } = await this.#database().query<{ on: boolean }>(this.#sql.insertOnly);
    if (rows[0]?.on === true) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `${this.name} is insert-only (the WAL relay's mode): its rows are sent by relay --mode wal; run relay --mode wal --drop-slot first to poll it`,
        { details: { field: 'mode' } },
      );
    }
    this.#pollableAt = Date.now();
  }

  #database(): Database {
    if (!this.#db) throw new Error('this outbox store was built for enqueue only; give it a Database to relay');
    return this.#db;
  }
}

/** Claimed outbox rows as the relay takes them, in outbox order (the claim statement returns them unordered). */
export function claimedRows(rows: ClaimRow[]): ClaimedRow[] {
  return rows
    .map((r) => ({
      ref: r.ref,
      messageId: r.message_id,
      attempt: Number(r.attempts),
      state: Number(r.state) as MessageState,
      ...(r.prev_lease_until_ms === null || r.prev_lease_until_ms === undefined
        ? {}
        : { previousLeaseUntilMs: Number(r.prev_lease_until_ms) }),
      record: {
        topic: r.topic,
        key: r.msg_key,
        headers: r.headers,
        value: Buffer.isBuffer(r.payload) ? r.payload : Buffer.from(r.payload),
      },
    }))
    .sort((a, b) => compareRefs(a.ref, b.ref));
}

function compareRefs(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
