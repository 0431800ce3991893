import type { Migration } from '../migrations.ts';

/**
 * A record's handler-start mark also keeps how many of its attempts failed (charged to its retry policy),
 * so a record redelivered after its consumer died goes on from its next attempt instead of from the first:
 * its policy's budget then spans the crash, and a failure that an attempt number decides is not met again.
 * Adding a column with a constant default rewrites nothing.
 */
export const attemptResumeMigration: Migration = {
  version: 17,
  name: 'attempt-resume',
  sql: (s) => `
    alter table ${s}.consumer_attempt add column if not exists failed integer not null default 0;
  `,
};
