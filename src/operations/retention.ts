import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import type { RetentionStore, RetentionTable } from '../ports/operations-store.ts';
import type { OpsMetrics } from './ops-metrics.ts';

const DAY = 86_400_000;

export const retentionConfigSchema = z
  .object({
    /**
     * Sent outbox rows (and their transitions) older than this go. Keep it longer than the topics' retention,
     * so what the broker loses can still be resent from the outbox (O5). Unsent rows are never deleted.
     */
    outboxMs: z
      .number()
      .int()
      .positive()
      .default(14 * DAY),
    /** Inbox rows older than this go. Must exceed the consumers' replay horizon, or a late redelivery could apply twice. */
    inboxMs: z
      .number()
      .int()
      .positive()
      .default(14 * DAY),
    /** The oldest message that can still come back (topic retention, replays); the inbox must outlive it. */
    replayHorizonMs: z
      .number()
      .int()
      .positive()
      .default(7 * DAY),
    /** Dead letters a person resolved (replayed or discarded); open ones are never deleted. */
    resolvedDeadLettersMs: z
      .number()
      .int()
      .positive()
      .default(30 * DAY),
    reconcileRunsMs: z
      .number()
      .int()
      .positive()
      .default(30 * DAY),
    sequenceAlarmsMs: z
      .number()
      .int()
      .positive()
      .default(30 * DAY),
    /** Rows per delete statement: each batch is its own short transaction. */
    batchSize: z.number().int().positive().max(100_000).default(1_000),
    /** Pause between batches, so a big cleanup leaves the business database room. */
    pauseMs: z.number().int().nonnegative().default(20),
    /** Stop a table after this many rows in one run (the next run continues). */
    maxRowsPerTable: z.number().int().positive().default(1_000_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.inboxMs <= c.replayHorizonMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['inboxMs'],
        message: `must be longer than replayHorizonMs (${c.replayHorizonMs}), or a late redelivery could apply twice`,
      });
    }
  });

export type RetentionConfig = z.input<typeof retentionConfigSchema>;

export type RetentionResult = Record<RetentionTable, number>;

/**
 * Deletes what is past retention, table by table, in small batches (each its own statement, skipping rows
 * another transaction holds) with a pause between them. Safe to run from several places at once. Every
 * table's age is indexed: outbox(created_at), inbox(processed_at), the others by time too.
 */
export async function cleanup(
  deps: { store: RetentionStore; metrics?: OpsMetrics },
  config: RetentionConfig = {},
): Promise<RetentionResult> {
  const c = parseConfig(retentionConfigSchema, config, 'retention');
  const plan: Array<[RetentionTable, number]> = [
    ['outbox', c.outboxMs],
    ['inbox', c.inboxMs],
    ['dead_letter', c.resolvedDeadLettersMs],
    ['reconcile_run', c.reconcileRunsMs],
    ['sequence_alarm', c.sequenceAlarmsMs],
  ];
  const result = { outbox: 0, inbox: 0, dead_letter: 0, reconcile_run: 0, sequence_alarm: 0 } as RetentionResult;
  for (const [table, olderThanMs] of plan) {
    while (result[table] < c.maxRowsPerTable) {
      const n = await deps.store.deleteBatch(table, olderThanMs, Math.min(c.batchSize, c.maxRowsPerTable - result[table]));
      result[table] += n;
      deps.metrics?.retentionDeleted.inc({ table }, n);
      if (n < c.batchSize) break;
      if (c.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, c.pauseMs));
    }
  }
  deps.metrics?.retentionRuns.inc();
  deps.metrics?.retentionLastRun.set(Date.now() / 1000);
  return result;
}
