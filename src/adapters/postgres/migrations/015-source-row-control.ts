import type { Migration } from '../migrations.ts';

/**
 * The control channel for state-column sources (C9 repair, O9 receipts) reads source_row by what the
 * consumer knows, never the business table (which gets no index from zeroloss):
 *
 * - claimed_at: when the row was first claimed, which is when its message was built and its sequence drawn
 *   (the outbox's created_at for these rows). The producer marks read rows claimed recently through its
 *   index. Set by the claim's insert only; rows claimed before this migration keep null.
 * - an index on message_id: a receipt names a message by id, and so do trace and resend. Without it each
 *   receipt batch read every row of the source. It costs one index entry per row, when its message is built.
 */
export const sourceRowControlMigration: Migration = {
  version: 15,
  name: 'source-row-control',
  sql: (s) => `
    alter table ${s}.source_row add column if not exists claimed_at timestamptz;
    alter table ${s}.source_row alter column claimed_at set default now();
    create index if not exists source_row_claimed on ${s}.source_row (claimed_at) where claimed_at is not null;
    create index if not exists source_row_message on ${s}.source_row (message_id) where message_id is not null;
  `,
};
