import type { Migration } from '../migrations.ts';

/**
 * A state-column source's message is built once, at the row's first claim, and these columns keep what was
 * decided then beside the encoded bytes: the topic after any divert rule (O4), the message key, and the
 * per-(producer, key) sequence drawn from outbox_key_seq. Retries, resends, trace and reconcile all read
 * them, so they agree with what the relay published whatever the row or the rules say later. Rows encoded
 * before this migration have them null: readers fall back to the mapping and sequence 0.
 */
export const sourceRowMessageMigration: Migration = {
  version: 12,
  name: 'source-row-message',
  sql: (s) => `
    alter table ${s}.source_row add column if not exists topic text;
    alter table ${s}.source_row add column if not exists msg_key text;
    alter table ${s}.source_row add column if not exists key_seq bigint;
  `,
};
