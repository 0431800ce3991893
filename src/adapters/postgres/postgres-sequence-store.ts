import { quoteIdent } from '../../core/identifier.ts';
import {
  type GapSummary,
  type ProducerSequenceStore,
  type SequenceChanges,
  type SequenceGap,
  type SequenceRun,
  type SequenceSource,
  type SequenceStore,
  type TailGap,
  sequenceKey,
} from '../../ports/sequence-store.ts';
import type { Database, SqlExecutor } from '../../ports/sql-executor.ts';
import { queryPrepared } from './prepared-query.ts';
import { type SequenceSql, sequenceSql } from './sequence-sql.ts';

type Row = Record<string, unknown>;

/** Sequence marks and gaps (consumer side) and the outbox and source_row reads of the control channel (producer side). */
export class PostgresSequenceStore implements SequenceStore, ProducerSequenceStore {
  readonly #db: Database;
  readonly #sql: SequenceSql;
  readonly #prepared: boolean;

  /** `preparedStatements` (default true): the effect-path statement as a named prepared statement (prepared-query.ts). */
  constructor(db: Database, options: { schema?: string; preparedStatements?: boolean } = {}) {
    this.#db = db;
    this.#sql = sequenceSql(quoteIdent(options.schema ?? 'zeroloss', 'schema'));
    this.#prepared = options.preparedStatements ?? true;
  }

  async recordRuns(tx: SqlExecutor, groupId: string, runs: SequenceRun[]): Promise<SequenceChanges> {
    const changes: SequenceChanges = { found: [], healed: [] };
    if (runs.length === 0) return changes;
    // Prepared: planning this five-part statement cost more than running it (measured: docs/consumer.md).
    const { rows } = await queryPrepared<Row>(
      tx,
      this.#sql.recordRuns,
      [
        groupId,
        runs.map((r) => r.topic),
        runs.map((r) => r.partition),
        runs.map((r) => r.producerId),
        runs.map((r) => r.key),
        runs.map((r) => r.firstSeq),
        runs.map((r) => r.lastSeq),
        runs.map((r) => r.offset.toString()),
      ],
      this.#prepared,
    );
    for (const row of rows) (row.change === 'found' ? changes.found : changes.healed).push(gapOf(row));
    return changes;
  }

  async openGaps(groupId: string, limit: number): Promise<SequenceGap[]> {
    return (await this.#db.query<Row>(this.#sql.openGaps, [groupId, limit])).rows.map(gapOf);
  }

  async healDeadLettered(groupId: string): Promise<SequenceGap[]> {
    return (await this.#db.query<Row>(this.#sql.healDeadLettered, [groupId])).rows.map(gapOf);
  }

  async markAlarmed(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.#db.query<{ id: string }>(this.#sql.markAlarmed, [ids]);
    return rows.map((r) => String(r.id));
  }

  async markRepairRequested(id: string, backoffMs: number, requestsSeen: number): Promise<boolean> {
    const { rows } = await this.#db.query(this.#sql.markRepairRequested, [id, backoffMs, requestsSeen]);
    return rows.length > 0;
  }

  async appliedSeqs(groupId: string, keys: Array<{ topic: string; producerId: string; key: string }>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (keys.length === 0) return out;
    const { rows } = await this.#db.query<Row>(this.#sql.appliedSeqs, [
      groupId,
      keys.map((k) => k.topic),
      keys.map((k) => k.producerId),
      keys.map((k) => k.key),
    ]);
    for (const r of rows) out.set(sequenceKey(String(r.topic), String(r.producer_id), String(r.msg_key)), Number(r.last_seq));
    return out;
  }

  async recordTailGap(groupId: string, gap: TailGap): Promise<void> {
    await this.#db.query(this.#sql.recordTailGap, [
      groupId,
      gap.topic,
      gap.partition,
      gap.producerId,
      gap.key,
      gap.fromSeq,
      gap.toSeq,
      gap.atOffset.toString(),
    ]);
  }

  async gapSummary(groups?: string[]): Promise<GapSummary[]> {
    return (await this.#db.query<Row>(this.#sql.gapSummary, [groups ?? null])).rows.map((r) => ({
      groupId: String(r.consumer_group),
      open: Number(r.open),
      alarmed: Number(r.alarmed),
      tail: Number(r.tail),
      missing: Number(r.missing),
      oldest: r.oldest ? new Date(r.oldest as string) : null,
      repairRequests: Number(r.repair_requests),
    }));
  }

  async idsInRange(range: {
    producerId: string;
    topic: string;
    key: string;
    fromSeq: number;
    toSeq: number;
    sources?: readonly string[];
  }): Promise<Array<{ messageId: string; source: string | null }>> {
    const { rows } = await this.#db.query<Row>(this.#sql.idsInRange, [
      range.producerId,
      range.topic,
      range.key,
      range.fromSeq,
      range.toSeq,
      [...(range.sources ?? [])],
    ]);
    return rows.map((r) => ({ messageId: String(r.message_id), source: r.source === null ? null : String(r.source) }));
  }

  async recentSentMarks(
    withinMs: number,
    limit: number,
    sources: readonly SequenceSource[] = [],
  ): Promise<Array<{ producerId: string; topic: string; key: string; seq: number; partition: number; offset: bigint }>> {
    const params = [withinMs, limit, sources.map((s) => s.name), sources.map((s) => s.producerId)];
    return (await this.#db.query<Row>(this.#sql.recentSentMarks, params)).rows.map((r) => ({
      producerId: String(r.producer_id),
      topic: String(r.topic),
      key: String(r.msg_key),
      seq: Number(r.key_seq),
      partition: Number(r.sent_partition),
      offset: BigInt(String(r.sent_offset)),
    }));
  }
}

function date(v: unknown): Date | null {
  return v === null || v === undefined ? null : new Date(v as string);
}

function gapOf(r: Row): SequenceGap {
  return {
    id: String(r.id),
    groupId: String(r.consumer_group),
    topic: String(r.topic),
    partition: Number(r.msg_partition),
    producerId: String(r.producer_id),
    key: String(r.msg_key),
    fromSeq: Number(r.from_seq),
    toSeq: Number(r.to_seq),
    tail: Boolean(r.tail),
    atOffset: r.at_offset === null || r.at_offset === undefined ? null : BigInt(String(r.at_offset)),
    detectedAt: date(r.detected_at) as Date,
    healedAt: date(r.healed_at),
    alarmedAt: date(r.alarmed_at),
    repairRequests: Number(r.repair_requests),
    repairRequestedAt: date(r.repair_requested_at),
    nextRepairAt: date(r.next_repair_at),
    ageMs: Number(r.age_ms),
    repairDue: Boolean(r.repair_due),
  };
}
