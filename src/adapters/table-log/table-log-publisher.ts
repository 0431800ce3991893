import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { classifyError, ZerolossError } from '../../core/errors.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import type { PublishOutcome, Publisher } from '../../ports/transport.ts';
import { checkOutgoingRecord, type OutgoingRecordRules } from '../shared/check-outgoing-record.ts';
import { partitionFor } from '../../core/partition-for.ts';
import { publisherConfigFields } from '../shared/publisher-config-fields.ts';
import { screenRecords } from '../shared/screen-records.ts';
import { tableLogChannel, tableLogSql } from './table-log-sql.ts';

export const tableLogPublisherConfigSchema = z
  .object({
    /** The zeroloss schema holding the log tables (migration 3). */
    schema: z.string().default('zeroloss'),
    maxRecordBytes: publisherConfigFields.maxRecordBytes,
    /** NOTIFY subscribers at commit so they fetch at once instead of at their next poll. */
    notify: z.boolean().default(true),
  })
  .strict();

export type TableLogPublisherConfig = z.input<typeof tableLogPublisherConfigSchema>;

/** Postgres text cannot hold NUL: refused here rather than failing the whole batch's transaction. */
const RULES: OutgoingRecordRules = {
  checkKey: (key) =>
    key.includes('\u0000') ? new ZerolossError('ZL_INVALID_KEY', 'record key must not contain NUL characters') : undefined,
  checkHeader: (name, value) =>
    name.includes('\u0000') || value.includes('\u0000')
      ? new ZerolossError('ZL_INVALID_MESSAGE', `header ${name} must not contain NUL characters`)
      : undefined,
  missingTopic: 'in the table log: create it with TableLogAdmin.createTopic(topic, partitions)',
};

const INSERT_CHUNK_RECORDS = 1_000;
const INSERT_CHUNK_BYTES = 8 * 1_048_576;

/** A record that passed validation, with its partition; `index` is its place in the caller's array. */
export interface PlannedRecord {
  index: number;
  topic: string;
  partition: number;
  key: string;
  headersJson: string;
  value: Buffer;
}

/**
 * Publishes to the table log. One call is one transaction: every accepted record of the call commits
 * together or none does. Records that cannot be written (unknown topic, too large, text Postgres cannot
 * store) fail on their own, and later records of the same topic and key are held back unattempted, so a
 * key's order never has a hole in it.
 */
export class TableLogPublisher implements Publisher {
  readonly config: Readonly<z.output<typeof tableLogPublisherConfigSchema>>;
  readonly #db: Database;
  readonly #sql: ReturnType<typeof tableLogSql>;
  readonly #channel: string;

  constructor(db: Database, config: TableLogPublisherConfig = {}) {
    this.config = parseConfig(tableLogPublisherConfigSchema, config, 'table log publisher');
    this.#db = db;
    this.#sql = tableLogSql(this.config.schema);
    this.#channel = tableLogChannel(this.config.schema);
  }

  /** The database the log lives in (see Publisher.publishWithin). */
  get database(): Database {
    return this.#db;
  }

  async publish(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    return this.#publish(this.#db, records, (fn) => this.#db.transaction(fn));
  }

  /**
   * Writes the records inside the caller's transaction of the log's own database: they commit or roll
   * back with whatever else it wrote (a dead letter marked replayed, say). A failed statement fails the
   * caller's transaction, so this throws instead of reporting per-record failures it could not survive.
   */
  async publishWithin(tx: SqlExecutor, records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    return this.#publish(tx, records, (fn) => fn(tx), { rethrow: true });
  }

  async #publish(
    executor: SqlExecutor,
    records: OutgoingRecord[],
    inTransaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => Promise<T>,
    options: { rethrow?: boolean } = {},
  ): Promise<PublishOutcome[]> {
    if (records.length === 0) return [];
    let counts: Map<string, number>;
    try {
      const topics = [...new Set(records.map((r) => r?.topic).filter((t): t is string => typeof t === 'string'))];
      const { rows } = await executor.query<{ topic: string; partitions: number }>(this.#sql.topicPartitions, [topics]);
      counts = new Map(rows.map((r) => [r.topic, Number(r.partitions)]));
    } catch (error) {
      if (options.rethrow) throw error;
      return records.map(() => ({ ok: false, error: unavailable(error), attempted: true }));
    }
    const { outcomes, planned } = planPublish(records, counts, this.config.maxRecordBytes);
    if (planned.length === 0) return outcomes as PublishOutcome[];
    try {
      const offsets = await inTransaction((tx) => this.#write(tx, planned));
      planned.forEach((p, i) => {
        outcomes[p.index] = { ok: true, partition: p.partition, offset: offsets[i]! };
      });
    } catch (error) {
      if (options.rethrow) throw error;
      const failure = unavailable(error);
      for (const p of planned) outcomes[p.index] = { ok: false, error: failure, attempted: true };
    }
    return outcomes as PublishOutcome[];
  }

  /** Writes the planned records in the transaction `tx`; returns each one's offset, in `planned` order. */
  async #write(tx: SqlExecutor, planned: PlannedRecord[]): Promise<bigint[]> {
    const perPartition = new Map<string, { topic: string; partition: number; n: number }>();
    for (const p of planned) {
      const slot = `${p.topic}\u0000${p.partition}`;
      const entry = perPartition.get(slot) ?? { topic: p.topic, partition: p.partition, n: 0 };
      entry.n++;
      perPartition.set(slot, entry);
    }
    const slots = [...perPartition.values()];
    const { rows } = await tx.query<{ topic: string; partition: number; next_offset: string }>(this.#sql.lockPartitions, [
      slots.map((s) => s.topic),
      slots.map((s) => s.partition),
    ]);
    if (rows.length !== slots.length) {
      throw new ZerolossError('ZL_UNKNOWN_TOPIC', 'a partition disappeared while publishing', { retryable: true });
    }
    const next = new Map(rows.map((r) => [`${r.topic}\u0000${Number(r.partition)}`, BigInt(r.next_offset)]));
    await tx.query(this.#sql.advancePartitions, [slots.map((s) => s.topic), slots.map((s) => s.partition), slots.map((s) => s.n)]);
    const offsets = planned.map((p) => {
      const slot = `${p.topic}\u0000${p.partition}`;
      const offset = next.get(slot)!;
      next.set(slot, offset + 1n);
      return offset;
    });
    // Several statements when the batch is big, so no single statement carries hundreds of megabytes
    // (PGlite's memory is a WebAssembly heap); they are still one transaction.
    for (const [from, to] of chunks(planned, INSERT_CHUNK_RECORDS, INSERT_CHUNK_BYTES)) {
      const part = planned.slice(from, to);
      await tx.query(this.#sql.insertRecords, [
        part.map((p) => p.topic),
        part.map((p) => p.partition),
        offsets.slice(from, to).map(String),
        part.map((p) => p.key),
        part.map((p) => p.headersJson),
        part.map((p) => p.value),
      ]);
    }
    if (this.config.notify) {
      for (const topic of new Set(planned.map((p) => p.topic))) await tx.query(this.#sql.notify, [this.#channel, `t:${topic}`]);
    }
    return offsets;
  }

  /** The database belongs to the caller; there is nothing of the publisher's own to release. */
  async close(): Promise<void> {}
}

/**
 * Decides, before any SQL, which records can be written and where. Pure, so the ordering rules are
 * tested without a database. `outcomes` holds a failure for every record left out, `undefined` for the
 * planned ones.
 */
export function planPublish(
  records: OutgoingRecord[],
  partitionCounts: Map<string, number>,
  maxRecordBytes: number,
): { outcomes: Array<PublishOutcome | undefined>; planned: PlannedRecord[] } {
  const planned: PlannedRecord[] = [];
  const check = (record: OutgoingRecord) => checkOutgoingRecord(record, partitionCounts, maxRecordBytes, RULES);
  const { outcomes } = screenRecords(records, check, (record, index) => {
    planned.push({
      index,
      topic: record.topic,
      partition: partitionFor(record.key, partitionCounts.get(record.topic)!),
      key: record.key,
      headersJson: JSON.stringify(record.headers ?? {}),
      value: Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value),
    });
  });
  return { outcomes, planned };
}

/** [from, to) index ranges of at most `maxRecords` records and about `maxBytes` bytes (always at least one record). */
export function chunks(planned: PlannedRecord[], maxRecords: number, maxBytes: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let from = 0;
  let bytes = 0;
  planned.forEach((p, i) => {
    const size = p.value.length + p.headersJson.length + p.key.length;
    if (i > from && (i - from >= maxRecords || bytes + size > maxBytes)) {
      ranges.push([from, i]);
      from = i;
      bytes = 0;
    }
    bytes += size;
  });
  if (from < planned.length) ranges.push([from, planned.length]);
  return ranges;
}

function unavailable(error: unknown): ZerolossError {
  if (error instanceof ZerolossError) return error;
  const cause = classifyError(error);
  return new ZerolossError('ZL_SEND_FAILED', `table log write failed: ${cause.message}`, { retryable: true, cause: error });
}
