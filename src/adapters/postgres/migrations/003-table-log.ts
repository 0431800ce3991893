import type { Migration } from '../migrations.ts';

/** Embedded transport: a durable partitioned log in Postgres tables, with consumer-group offsets. */
export const tableLogMigration: Migration = {
  version: 3,
  name: 'table-log',
  sql: (s) => `
    create table if not exists ${s}.log_topic (
      topic       text primary key,
      partitions  integer not null check (partitions > 0),
      created_at  timestamptz not null default now()
    );

    -- One row per partition. next_offset is the offset counter: publishers bump it inside their
    -- transaction, and its row lock serialises writers of one partition until they commit, so offsets
    -- become visible in order and without gaps (see table-log-sql.ts).
    create table if not exists ${s}.log_partition (
      topic        text not null references ${s}.log_topic (topic) on delete cascade,
      partition    integer not null check (partition >= 0),
      next_offset  bigint not null default 0,
      primary key (topic, partition)
    );

    create table if not exists ${s}.log_record (
      topic       text not null,
      partition   integer not null,
      log_offset  bigint not null,
      msg_key     text not null,
      headers     jsonb not null,
      value       bytea not null,
      created_at  timestamptz not null default now(),
      primary key (topic, partition, log_offset)
    );
    -- time windows: retention by age, and reconciliation of what the log holds for the last N minutes (P5, O2)
    create index if not exists log_record_created on ${s}.log_record (created_at);

    -- Live members of a consumer group; a member whose lease ran out is dead to the others.
    create table if not exists ${s}.log_group_member (
      group_id     text not null,
      member_id    text not null,
      topics       text[] not null,
      lease_until  timestamptz not null,
      joined_at    timestamptz not null default now(),
      primary key (group_id, member_id)
    );

    -- Who owns each partition for a group. generation is bumped on every claim; commits name the
    -- generation they were made under, so a member that lost a partition can no longer commit to it.
    create table if not exists ${s}.log_group_owner (
      group_id    text not null,
      topic       text not null,
      partition   integer not null,
      member_id   text,
      generation  bigint not null default 0,
      changed_at  timestamptz not null default now(),
      primary key (group_id, topic, partition)
    );

    -- Committed offsets: the next offset the group will read, per partition.
    create table if not exists ${s}.log_group_offset (
      group_id          text not null,
      topic             text not null,
      partition         integer not null,
      committed_offset  bigint not null check (committed_offset >= 0),
      member_id         text not null,
      generation        bigint not null,
      committed_at      timestamptz not null default now(),
      primary key (group_id, topic, partition)
    );
    create index if not exists log_group_offset_topic on ${s}.log_group_offset (topic, partition);
  `,
};
