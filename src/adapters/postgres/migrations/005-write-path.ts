import type { Migration } from '../migrations.ts';

/**
 * Cheaper writes on the outbox's hot path (measured in docs/benchmarks.md):
 *
 * - Divert rules are applied by the enqueue statement itself (one primary-key probe of topic_divert)
 *   instead of a PL/pgSQL row trigger, which cost a function call and an SPI query per row. Only enqueue
 *   writes outbox rows, so the rule still decides the topic once, at insert, for relay, trace and reconcile.
 * - fillfactor 70: pages keep room, so the relay's lease update (columns in no index) can be a HOT update
 *   that touches no index, instead of a new row version in every outbox index. Applies to pages written
 *   from now on.
 */
export const writePathMigration: Migration = {
  version: 5,
  name: 'write-path',
  sql: (s) => `
    drop trigger if exists outbox_divert on ${s}.outbox;
    drop function if exists ${s}.outbox_divert();
    alter table ${s}.outbox set (fillfactor = 70);
    -- nothing reads transitions by time (the collector pages by id, trace by message id): one index less per send
    drop index if exists ${s}.outbox_transition_at;
  `,
};
