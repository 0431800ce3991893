import type { Migration } from '../migrations.ts';

/**
 * Two-way confirmation: the producing service's record of which consumer group applied which of its outbox
 * messages, filled from the receipts the consumers send on the control channel (they cannot write here).
 * Only messages of this outbox are kept; `topic` is the outbox row's, so status can tell which topics a group
 * reads. `receipt_group` is the small list of (group, topic) pairs ever confirmed, so "which groups do we
 * expect" never scans the receipts.
 */
export const deliveryReceiptMigration: Migration = {
  version: 11,
  name: 'delivery-receipt',
  sql: (s) => `
    create table if not exists ${s}.delivery_receipt (
      message_id     text not null,
      consumer_group text not null,
      topic          text not null,
      applied_at     timestamptz not null,
      received_at    timestamptz not null default now(),
      primary key (message_id, consumer_group)
    );
    -- status: a group's receipts stored within a recent window
    create index if not exists delivery_receipt_group_received on ${s}.delivery_receipt (consumer_group, received_at);

    create table if not exists ${s}.receipt_group (
      consumer_group text not null,
      topic          text not null,
      first_seen     timestamptz not null default now(),
      last_seen      timestamptz not null default now(),
      primary key (consumer_group, topic)
    );
  `,
};
