import type {
  BrokerInspector,
  BrokerRecord,
  CommittedOffset,
  PartitionRange,
  PartitionWatermarks,
  ReadStats,
} from '../../ports/broker-inspector.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { fetchBatches } from './table-log-fetch.ts';
import { TableLogAdmin } from './table-log-admin.ts';
import { tableLogSql } from './table-log-sql.ts';

/**
 * Operations' read-only view of the embedded table log (B4), so reconcile, trace and status work the same
 * without Kafka. Reads go through the subscribers' own fetch statement, a bounded batch per partition at
 * a time.
 */
export class TableLogInspector implements BrokerInspector {
  readonly #db: Database;
  readonly #admin: TableLogAdmin;
  readonly #sql: ReturnType<typeof tableLogSql>;
  readonly #batchRecords: number;

  constructor(db: Database, options: { schema?: string; batchRecords?: number } = {}) {
    this.#db = db;
    this.#admin = new TableLogAdmin(db, { schema: options.schema ?? 'zeroloss' });
    this.#sql = tableLogSql(options.schema ?? 'zeroloss');
    this.#batchRecords = options.batchRecords ?? 500;
  }

  async listTopics(): Promise<string[]> {
    return (await this.#admin.listTopics()).map((t) => t.topic);
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[] | undefined> {
    const marks = await this.#admin.endOffsets(topic);
    return marks.length === 0 ? undefined : marks;
  }

  async offsetsForTime(topic: string, atMs: number): Promise<Array<{ partition: number; offset: bigint }>> {
    const { rows } = await this.#db.query<{ partition: number; offset: string }>(this.#sql.offsetsForTime, [topic, atMs]);
    return rows.map((r) => ({ partition: Number(r.partition), offset: BigInt(r.offset) }));
  }

  async committedOffsets(groupId: string): Promise<CommittedOffset[]> {
    return (await this.#admin.committedOffsets(groupId)).map((c) => ({ topic: c.topic, partition: c.partition, offset: c.offset }));
  }

  async *read(ranges: PartitionRange[], stats: ReadStats = { records: 0, incomplete: [] }): AsyncIterable<BrokerRecord> {
    const remaining = new Map(
      ranges.filter((r) => r.from < r.to).map((r) => [`${r.topic}\u0000${r.partition}`, { ...r, position: r.from }]),
    );
    while (remaining.size > 0) {
      const open = [...remaining.values()];
      const batches = await fetchBatches(
        this.#db,
        this.#sql,
        open.map((r) => ({ topic: r.topic, partition: r.partition, position: r.position })),
        { maxBatchRecords: this.#batchRecords, maxBatchBytes: 8 * 1_048_576 },
      );
      for (const range of open) {
        const key = `${range.topic}\u0000${range.partition}`;
        const batch = batches.get(key) ?? [];
        // Nothing at or after the position: the rest of the range was never written or was deleted.
        if (batch.length === 0) remaining.delete(key);
        for (const r of batch) {
          if (r.offset >= range.to) {
            remaining.delete(key);
            break;
          }
          range.position = r.offset + 1n;
          stats.records++;
          yield {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp ?? 0,
            key: r.key,
            value: r.value,
            headers: r.headers,
          };
        }
        if (range.position >= range.to) remaining.delete(key);
      }
    }
  }
}
