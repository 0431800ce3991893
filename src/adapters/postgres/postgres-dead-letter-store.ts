import { ZerolossError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import { storableText } from '../../core/unstorable-text.ts';
import type {
  DeadLetterDetail,
  DeadLetterFilter,
  DeadLetterInput,
  DeadLetterQueue,
  DeadLetterStatus,
  DeadLetterSummary,
  DeadLetterWriter,
} from '../../ports/dead-letter-store.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { type InboxSql, inboxSql } from './inbox-sql.ts';

type Row = Record<string, unknown>;

/** A message id or type from a record that failed before its envelope was read may be any length; their columns are indexed. */
const INDEXED_CHARS = 512;

/** Text as Postgres can hold it (`storableText`), cut to `maxChars` where the column is indexed (a btree entry must fit a third of a page). */
function storable(value: string, maxChars?: number): string {
  const clean = storableText(value);
  return maxChars !== undefined && clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}

/** Dead letters in the zeroloss schema: written by consumers, listed, replayed and discarded by people. */
export class PostgresDeadLetterStore implements DeadLetterWriter, DeadLetterQueue {
  readonly #db: Database;
  readonly #sql: InboxSql;
  readonly database: Database;

  constructor(db: Database, options: { schema?: string } = {}) {
    this.#db = db;
    this.database = db;
    this.#sql = inboxSql(quoteIdent(options.schema ?? 'zeroloss', 'schema'));
  }

  async record(d: DeadLetterInput): Promise<{ id: string; inserted: boolean; published: boolean; copyError: string | null }> {
    // Whatever the record carried must fit: a dead letter that cannot be written is retried without end,
    // and its key and partition never move on. The original bytes are the payload (bytea) and the .dlq copy.
    const params = [
      d.groupId,
      storable(d.idempotencyKey),
      d.messageId === undefined ? null : storable(d.messageId, INDEXED_CHARS),
      d.topic,
      d.partition,
      d.offset.toString(),
      storable(d.key),
      d.type === undefined ? null : storable(d.type, INDEXED_CHARS),
      JSON.stringify(Object.fromEntries(Object.entries(d.headers).map(([name, value]) => [storable(name), storable(value)]))),
      d.payload,
      d.errorCode,
      storable(d.error),
      d.stack === undefined ? null : storable(d.stack),
      d.attempts,
      d.firstFailureAt,
      d.lastFailureAt,
      d.details === undefined
        ? null
        : JSON.stringify(d.details, (_name, value: unknown) => (typeof value === 'string' ? storable(value) : value)),
    ];
    // Twice at most: the union's read side cannot see an open row committed by a concurrent writer after
    // this statement began, but a second statement can.
    for (let i = 0; i < 2; i++) {
      const { rows } = await this.#db.query<{ id: string; published_at: Date | null; copy_error: string | null; inserted: boolean }>(
        this.#sql.deadLetterInsert,
        params,
      );
      const row = rows[0];
      if (row) return { id: row.id, inserted: row.inserted, published: row.published_at !== null, copyError: row.copy_error ?? null };
    }
    throw new Error(`dead letter for ${d.idempotencyKey} neither inserted nor found`);
  }

  async markPublished(id: string): Promise<void> {
    await this.#db.query(this.#sql.deadLetterPublished, [id]);
  }

  async markCopyRejected(id: string, error: string): Promise<void> {
    await this.#db.query(this.#sql.deadLetterCopyRejected, [id, storable(error)]);
  }

  async list(filter: DeadLetterFilter = {}): Promise<DeadLetterSummary[]> {
    const { rows } = await this.#db.query<Row>(this.#sql.deadLetterList, [
      filter.status ?? null,
      filter.topic ?? null,
      filter.groupId ?? null,
      filter.limit ?? 50,
      filter.before ?? null,
    ]);
    return rows.map(summary);
  }

  async get(id: string): Promise<DeadLetterDetail | undefined> {
    if (!/^\d{1,19}$/.test(id)) return undefined;
    const { rows } = await this.#db.query<Row>(this.#sql.deadLetterGet, [id]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      ...summary(row),
      idempotencyKey: String(row.idempotency_key),
      headers: row.headers as Record<string, string>,
      payload: Buffer.from(row.payload as Uint8Array),
      stack: (row.stack as string | null) ?? null,
      firstFailureAt: new Date(row.first_failure_at as string),
      details: (row.details as Record<string, unknown> | null) ?? null,
      publishedAt: row.published_at ? new Date(row.published_at as string) : null,
      copyError: (row.copy_error as string | null) ?? null,
      resolvedAt: row.resolved_at ? new Date(row.resolved_at as string) : null,
      resolvedBy: (row.resolved_by as string | null) ?? null,
    };
  }

  async replay(
    id: string,
    actor: string,
    send: (record: { topic: string; key: string; value: Buffer; headers: Record<string, string> }, tx: SqlExecutor) => Promise<void>,
    options: { skipDiscarded?: boolean } = {},
  ): Promise<boolean> {
    if (!/^\d{1,19}$/.test(id)) return false;
    // The row stays locked while the record is sent: a consumer dead-lettering the replayed copy again
    // waits on it, then sees the row replayed and opens a new one. A failed send rolls the status back.
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<Row>(this.#sql.deadLetterLock, [id]);
      const row = rows[0];
      if (!row) return false;
      if (options.skipDiscarded && row.status === 'discarded') {
        throw new ZerolossError('ZL_MESSAGE_NOT_FOUND', `dead letter ${id} is discarded now: not replayed`, {
          retryable: false,
          details: { id, status: row.status },
        });
      }
      await send(
        {
          topic: String(row.topic),
          key: String(row.msg_key),
          value: Buffer.from(row.payload as Uint8Array),
          headers: row.headers as Record<string, string>,
        },
        tx,
      );
      await tx.query(this.#sql.deadLetterReplayed, [id, actor]);
      return true;
    });
  }

  async discard(id: string, actor: string): Promise<boolean> {
    if (!/^\d{1,19}$/.test(id)) return false;
    const { rows } = await this.#db.query(this.#sql.deadLetterDiscard, [id, actor]);
    return rows.length === 1;
  }
}

function summary(row: Row): DeadLetterSummary {
  return {
    id: String(row.id),
    groupId: String(row.consumer_group),
    topic: String(row.topic),
    partition: Number(row.msg_partition),
    offset: String(row.msg_offset),
    key: String(row.msg_key),
    type: (row.msg_type as string | null) ?? null,
    messageId: (row.message_id as string | null) ?? null,
    errorCode: String(row.error_code),
    error: String(row.error),
    attempts: Number(row.attempts),
    status: row.status as DeadLetterStatus,
    createdAt: new Date(row.created_at as string),
    lastFailureAt: new Date(row.last_failure_at as string),
    replayCount: Number(row.replay_count),
  };
}
