import type { Migration } from '../migrations.ts';

/**
 * Consumer side: the inbox (dedup authority), start marks for poison detection, dead letters, and consumer
 * offsets kept in the business DB (P10). Column names avoid the reserved words `offset` and `partition`.
 */
export const consumerMigration: Migration = {
  version: 2,
  name: 'consumer',
  sql: (s) => `
    -- One row per applied effect: inserted in the same transaction as the handler's writes, so the primary
    -- key is what makes an effect happen once (C4).
    create table if not exists ${s}.inbox (
      consumer_group  text not null,
      idempotency_key text not null,
      message_id      text not null,
      topic           text not null,
      msg_partition   integer not null,
      msg_offset      bigint not null,
      processed_at    timestamptz not null default now(),
      primary key (consumer_group, idempotency_key)
    );
    -- retention cleanup scans by age
    create index if not exists inbox_processed_at on ${s}.inbox (processed_at);

    -- Handler starts per delivered record that has not been committed past yet. A record whose start count
    -- keeps growing without its offset ever being committed crashed the process each time (poison, C7).
    create table if not exists ${s}.consumer_attempt (
      consumer_group  text not null,
      topic           text not null,
      msg_partition   integer not null,
      msg_offset      bigint not null,
      message_id      text,
      started         integer not null,
      last_started_at timestamptz not null default now(),
      primary key (consumer_group, topic, msg_partition, msg_offset)
    );

    -- Dead letters: the original bytes and headers, why and when they failed, and what a person did.
    -- The copy on <topic>.dlq is for other tools; this table is what 'zeroloss dlq' lists and replays.
    create table if not exists ${s}.dead_letter (
      id               bigserial primary key,
      consumer_group   text not null,
      idempotency_key  text not null,
      message_id       text,
      topic            text not null,
      msg_partition    integer not null,
      msg_offset       bigint not null,
      msg_key          text not null,
      msg_type         text,
      headers          jsonb not null,
      payload          bytea not null,
      error_code       text not null,
      error            text not null,
      stack            text,
      attempts         integer not null,
      first_failure_at timestamptz not null,
      last_failure_at  timestamptz not null,
      -- 'dead' until a person replays or discards it
      status           text not null default 'dead' check (status in ('dead', 'replayed', 'discarded')),
      published_at     timestamptz,
      created_at       timestamptz not null default now(),
      resolved_at      timestamptz,
      resolved_by      text,
      replay_count     integer not null default 0
    );
    -- a message is dead at most once at a time: redeliveries and duplicate copies find the open row
    create unique index if not exists dead_letter_open on ${s}.dead_letter (consumer_group, idempotency_key) where status = 'dead';
    create index if not exists dead_letter_status on ${s}.dead_letter (status, id);

    -- Consumer positions stored with the effect (P10): the next offset to read per partition.
    create table if not exists ${s}.consumer_offset (
      consumer_group  text not null,
      topic           text not null,
      msg_partition   integer not null,
      next_offset     bigint not null,
      updated_at      timestamptz not null default now(),
      primary key (consumer_group, topic, msg_partition)
    );
  `,
};
