import type { Migration } from '../migrations.ts';

/**
 * Outbox pages filled to half instead of 70 % (migration 5), so that more of the polling relay's lease
 * updates fit a new row version on the row's own page and stay HOT updates (no entry in the six indexes).
 * An outbox row is ~700 bytes: at 70 % a page keeps room for the new versions of fewer than half of its
 * rows, and a claim leases every row of a page in one go. Measured with `node bench/wal-cost.ts` (WAL
 * records per message, counted, so the figure repeats): the polling relay's claim and record 10.7 -> 8.0
 * (lease updates HOT 0.47 -> 0.86 per message); and in interleaved drains of 10,000 rows to Kafka, two runs
 * of 5 and 7 repetitions, 70 % vs 50 %: 10,508 vs 12,134 and 8,938 vs 10,281 msg/s (docs/benchmarks.md).
 * The price is space: pages written from now on hold ~30 % fewer rows (rows are deleted by retention).
 *
 * A storage parameter only: no rewrite, and its lock does not block reads or writes.
 */
export const outboxFillfactorMigration: Migration = {
  version: 19,
  name: 'outbox-fillfactor',
  sql: (s) => `
    alter table ${s}.outbox set (fillfactor = 50);
  `,
};
