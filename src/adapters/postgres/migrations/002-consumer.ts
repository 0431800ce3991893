import type { Migration } from '../migrations.ts';

/** Consumer side: inbox (dedup), dead letters, consumer offsets kept in the business DB. */
export const consumerMigration: Migration = {
  version: 2,
  name: 'consumer',
  sql: (s) => `
    create table if not exists ${s}.inbox (
      consumer_group  text not null,
      idempotency_key text not null,
      message_id      text not null,
      processed_at    timestamptz not null default now(),
      primary key (consumer_group, idempotency_key)
    );
  `,
};
