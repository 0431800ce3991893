import { quoteIdent } from '../../core/identifier.ts';
import type { GroupConfirmationSummary, GroupReceipt, MessageConfirmation, ReceiptInput, ReceiptStore } from '../../ports/receipt-store.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { type ReceiptSql, receiptSql } from './receipt-sql.ts';

type Row = Record<string, unknown>;

/** Two-way confirmation on the producer's database (migration 11). Thin: every statement lives in receipt-sql.ts. */
export class PostgresReceiptStore implements ReceiptStore {
  readonly schema: string;
  readonly #db: SqlExecutor;
  readonly #sql: ReceiptSql;

  constructor(db: SqlExecutor, options: { schema?: string } = {}) {
    this.schema = options.schema ?? 'zeroloss';
    this.#db = db;
    this.#sql = receiptSql(quoteIdent(this.schema, 'schema'));
  }

  async recordReceipts(receipts: ReceiptInput[]): Promise<number> {
    if (receipts.length === 0) return 0;
    const { rows } = await this.#db.query<Row>(this.#sql.record, [
      receipts.map((r) => r.messageId),
      receipts.map((r) => r.group),
      receipts.map((r) => r.appliedAt),
    ]);
    return Number(rows[0]?.stored ?? 0);
  }

  async confirmations(ids: string[]): Promise<MessageConfirmation[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.#db.query<Row>(this.#sql.confirmations, [ids]);
    return rows.map((r) => ({
      messageId: String(r.message_id),
      topic: String(r.topic),
      state: Number(r.state),
      sentAt: nullableDate(r.sent_at),
      sentPartition: r.sent_partition === null ? null : Number(r.sent_partition),
      sentOffset: r.sent_offset === null ? null : BigInt(r.sent_offset as string),
      applied: jsonArray(r.applied).map(
        (a): GroupReceipt => ({ group: String(a.group), appliedAt: date(a.appliedAt), receivedAt: date(a.receivedAt) }),
      ),
      expected: textArray(r.expected),
    }));
  }

  async receiptGroups(seenWithinMs: number): Promise<string[]> {
    const { rows } = await this.#db.query<Row>(this.#sql.receiptGroups, [seenWithinMs]);
    return rows.map((r) => String(r.consumer_group));
  }

  async groupConfirmations(group: string, windowMs: number, unconfirmedAfterMs: number): Promise<GroupConfirmationSummary> {
    const [known] = (await this.#db.query<Row>(this.#sql.groupTopics, [group])).rows;
    const topics = known?.topics ? textArray(known.topics) : null;
    const [r] = (await this.#db.query<Row>(this.#sql.groupWindow, [group, windowMs, unconfirmedAfterMs, topics])).rows;
    return {
      group,
      topics,
      lastReceiptAt: nullableDate(known?.last_seen),
      sent: Number(r?.sent ?? 0),
      confirmed: Number(r?.confirmed ?? 0),
      oldestUnconfirmed:
        r?.message_id === null || r?.message_id === undefined
          ? undefined
          : { messageId: String(r.message_id), topic: String(r.topic), createdAt: date(r.created_at), sentAt: date(r.sent_at) },
    };
  }
}

function date(v: unknown): Date {
  return v instanceof Date ? v : new Date(v as string);
}

function nullableDate(v: unknown): Date | null {
  return v === null || v === undefined ? null : date(v);
}

function jsonArray(v: unknown): Row[] {
  return Array.isArray(v) ? (v as Row[]) : [];
}

function textArray(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}
