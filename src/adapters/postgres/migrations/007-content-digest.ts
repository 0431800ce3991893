import type { Migration } from '../migrations.ts';

/**
 * Consumer side, issue 11:
 *
 * - inbox.content_digest: what the message applied under a key looked like (see content-digest.ts), so a
 *   different message under a known message id is told apart from a duplicate. Nullable: rows written
 *   before this migration, and rows of handler-chosen keys, have none and are never compared.
 * - dead_letter.details: structured facts about the failure (e.g. both digests of an id conflict).
 * - dead_letter.copy_error: why the copy on <topic>.dlq was not written (the topic refused it for good,
 *   e.g. too large); such a dead letter lives in this table alone.
 *
 * Nullable columns without defaults: a catalogue change only, no table rewrite, and code of the previous
 * release keeps inserting rows without them.
 */
export const contentDigestMigration: Migration = {
  version: 7,
  name: 'content-digest',
  sql: (s) => `
    alter table ${s}.inbox add column if not exists content_digest bytea;
    alter table ${s}.dead_letter add column if not exists details jsonb;
    alter table ${s}.dead_letter add column if not exists copy_error text;
  `,
};
