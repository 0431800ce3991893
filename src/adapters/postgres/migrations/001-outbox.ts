import type { Migration } from '../migrations.ts';

/** Outbox table, its transition log, per-key sequences and state-column source bookkeeping. */
export const outboxMigration: Migration = {
  version: 1,
  name: 'outbox',
  sql: (s) => `
      create table if not exists ${s}.outbox (
        seq_id          bigserial primary key,
        message_id      text not null,
        topic           text not null,
        msg_key         text not null,
        msg_type        text not null,
        trace_id        text not null,
        producer_id     text not null,
        key_seq         bigint not null default 0,
        headers         jsonb not null,
        payload         bytea not null,
        -- 0 pending, 1 sent, 2 failed (will retry), 3 parked (terminal until a person acts)
        state           smallint not null default 0,
        attempts        integer not null default 0,
        last_error      text,
        created_at      timestamptz not null default now(),
        modified_time   timestamptz not null default now(),
        next_attempt_at timestamptz not null default now(),
        lease_owner     text,
        lease_until     timestamptz,
        sent_at         timestamptz,
        sent_partition  integer,
        sent_offset     bigint
      );
      create unique index if not exists outbox_message_id on ${s}.outbox (message_id);
      -- the claim scan: unsent rows in commit-ish order
      create index if not exists outbox_unsent on ${s}.outbox (seq_id) where state <> 1;
      -- per-key ordering check: earlier unsent rows of the same key
      create index if not exists outbox_key_unsent on ${s}.outbox (topic, msg_key, seq_id) where state <> 1;
      -- retention and reconciliation windows
      create index if not exists outbox_created on ${s}.outbox (created_at);
      -- when the next failed row becomes due, so an idle relay knows how long it may sleep
      create index if not exists outbox_due on ${s}.outbox (next_attempt_at) where state in (0, 2);

      create table if not exists ${s}.outbox_transition (
        id          bigserial primary key,
        message_id  text not null,
        from_state  smallint not null,
        to_state    smallint not null,
        attempt     integer not null,
        error       text,
        actor       text not null,
        at          timestamptz not null default now()
      );
      create index if not exists outbox_transition_message on ${s}.outbox_transition (message_id);

      -- gapless per-(producer, key) sequence: a rolled-back enqueue rolls its increment back too
      create table if not exists ${s}.outbox_key_seq (
        producer_id text not null,
        msg_key     text not null,
        seq         bigint not null,
        primary key (producer_id, msg_key)
      );

      -- relay bookkeeping for state-column sources, whose business table has only a state column
      create table if not exists ${s}.source_row (
        source          text not null,
        row_id          text not null,
        attempts        integer not null default 0,
        last_error      text,
        next_attempt_at timestamptz not null default now(),
        lease_owner     text,
        lease_until     timestamptz,
        parked          boolean not null default false,
        -- the message as first encoded: every later attempt resends these bytes, even if the row changed
        message_id      text,
        headers         jsonb,
        payload         bytea,
        sent_partition  integer,
        sent_offset     bigint,
        primary key (source, row_id)
      );
    `,
};
