import type { Registry } from 'prom-client';
import { HEADER } from '../core/envelope.ts';
import { metricFactory } from '../metrics/metric-factory.ts';
import { partitionFor } from '../core/partition-for.ts';
import { maxBig } from '../operations/broker-window.ts';
import type { BrokerInspector, PartitionRange, ReadStats } from '../ports/broker-inspector.ts';
import type { ClaimedRow, SentOutcome } from '../ports/outbox-store.ts';

/** What the check found and what it cost; `error` set when the broker could not be read (every row is then resent). */
export interface BrokerSentCheckResult {
  found: SentOutcome[];
  recordsRead: number;
  error: unknown;
}

/**
 * Before a row an earlier claim left without an outcome is sent again, looks for its message on the broker:
 * that claim's holder may have died after the broker acknowledged the send and before recording it, and a
 * resend would put a second copy on the topic. Only rows with `previousLeaseUntilMs` are looked for, so
 * the first send of a row never reads the broker.
 *
 * Where: the partition the row's key maps to, from the first record written at or after the earlier claim
 * (its lease end minus `leaseMs`, minus `slackMs` for the skew between the database's clock and the
 * producer's timestamps) to the end, matched by the message-id header. The window is about one lease
 * long, and the read stops once every row looked for is found.
 *
 * Never loses and never blocks: a read that fails, cannot finish, or runs past half the lease (at least
 * 5 s; checked as records arrive) leaves the rows it did not find to be sent again (a duplicate, which the
 * consumer's inbox absorbs). A claim made with a longer lease than this relay's starts before the window:
 * the check then misses it and the row is resent, never lost.
 */
export class BrokerSentCheck {
  readonly #inspector: BrokerInspector;
  readonly #leaseMs: number;
  readonly #slackMs: number;
  readonly #budgetMs: number;
  readonly #metrics: ReturnType<typeof checkMetrics>;

  constructor(inspector: BrokerInspector, options: { leaseMs: number; slackMs: number; registry: Registry }) {
    this.#inspector = inspector;
    this.#leaseMs = options.leaseMs;
    this.#slackMs = options.slackMs;
    this.#budgetMs = Math.max(options.leaseMs / 2, 5_000);
    this.#metrics = checkMetrics(options.registry);
  }

  /** The rows whose message the broker holds, with where it holds them. Never throws. */
  async find(source: string, rows: ClaimedRow[]): Promise<BrokerSentCheckResult> {
    const labels = { source };
    const stopTimer = this.#metrics.seconds.startTimer(labels);
    const stats: ReadStats = { records: 0, incomplete: [] };
    const found: SentOutcome[] = [];
    let error: unknown;
    let checked = 0;
    // Half the lease (at least 5 s): the whole claimed batch waits for the check inside its lease.
    const deadline = performance.now() + this.#budgetMs;
    try {
      const byTopic = new Map<string, ClaimedRow[]>();
      for (const row of rows) {
        if (row.previousLeaseUntilMs === undefined) continue;
        checked++;
        const topicRows = byTopic.get(row.record.topic);
        if (topicRows) topicRows.push(row);
        else byTopic.set(row.record.topic, [row]);
      }
      for (const [topic, topicRows] of byTopic) {
        if (error !== undefined) break;
        const wanted = new Map(topicRows.map((r) => [r.record.headers[HEADER.id] ?? r.messageId, r]));
        const fromMs = Math.min(...topicRows.map((r) => (r.previousLeaseUntilMs as number) - this.#leaseMs)) - this.#slackMs;
        const ranges = await this.#ranges(topic, fromMs, topicRows);
        if (ranges.length === 0) continue;
        for await (const record of this.#inspector.read(ranges, stats)) {
          if (performance.now() > deadline) {
            error = new Error(`broker check gave up after ${Math.round(this.#budgetMs)} ms, ${stats.records} records read`);
            break;
          }
          const row = wanted.get(record.headers[HEADER.id] ?? '');
          if (!row) continue;
          wanted.delete(record.headers[HEADER.id] ?? '');
          found.push({ ref: row.ref, partition: record.partition, offset: record.offset });
          // Every row found: leave the rest of the window unread (the loop's exit closes the reader).
          if (wanted.size === 0) break;
        }
      }
    } catch (cause) {
      // What was found before the failure is on the broker all the same; the rest are sent again.
      error = cause;
    }
    if (error !== undefined) this.#metrics.errors.inc(labels);
    stopTimer();
    this.#metrics.checked.inc(labels, checked);
    this.#metrics.found.inc(labels, found.length);
    return { found, recordsRead: stats.records, error };
  }

  /**
   * The partitions the rows' keys map to, from the first record at or after `fromMs` to the current end.
   * Every partitioned transport places a key with `partitionFor` over the topic's partition count; if the
   * count grew since the send, the key may have moved, the check misses it and the row is resent.
   */
  async #ranges(topic: string, fromMs: number, rows: ClaimedRow[]): Promise<PartitionRange[]> {
    const marks = await this.#inspector.watermarks(topic);
    if (!marks || marks.length === 0) return [];
    const partitions = new Set(rows.map((r) => partitionFor(r.record.key, marks.length)));
    const start = new Map((await this.#inspector.offsetsForTime(topic, fromMs)).map((p) => [p.partition, p.offset]));
    const ranges: PartitionRange[] = [];
    for (const m of marks) {
      if (!partitions.has(m.partition)) continue;
      const from = maxBig(start.get(m.partition) ?? m.low, m.low);
      if (from < m.high) ranges.push({ topic, partition: m.partition, from, to: m.high });
    }
    return ranges;
  }
}

function checkMetrics(registry: Registry) {
  const { counter, histogram } = metricFactory(registry);
  const source = ['source'] as const;
  return {
    checked: counter(
      'zeroloss_relay_broker_checked_total',
      'Rows an earlier claim left without an outcome, looked for on the broker before sending them again',
      source,
    ),
    found: counter(
      'zeroloss_relay_found_on_broker_total',
      'Of those, rows whose message the broker already held: marked sent without a resend',
      source,
    ),
    errors: counter('zeroloss_relay_broker_check_errors_total', 'Checks that could not read the broker (the rows were resent)', source),
    seconds: histogram(
      'zeroloss_relay_broker_check_seconds',
      'Time of one broker check (a round with such rows)',
      source,
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
  };
}
