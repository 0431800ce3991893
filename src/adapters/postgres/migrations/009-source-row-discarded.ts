import type { Migration } from '../migrations.ts';

/**
 * A parked row of a state-column source can be discarded by a person (`zeroloss parked discard`). The
 * business row is never deleted (it is the business's record, not a message copy), so the decision is kept
 * beside the relay's bookkeeping: a discarded row is never claimed again, no longer counts as parked, and no
 * longer holds its key's later rows back. Its encoded message stays in source_row and in the audit.
 */
export const sourceRowDiscardedMigration: Migration = {
  version: 9,
  name: 'source-row-discarded',
  sql: (s) => `
    alter table ${s}.source_row add column if not exists discarded_at timestamptz;
  `,
};
