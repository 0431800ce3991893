import type { Migration } from '../migrations.ts';

/**
 * Operations (O1–O7): the audit of what people and tools did to messages, reconciliation runs, the
 * consumers' sequence alarms, divert rules, and the indexes trace, reconcile and retention look rows up by.
 *
 * The two `create index` on inbox and dead_letter run inside the migration transaction and block writes to
 * those tables while they build; on a large existing inbox, create `inbox_message_id` by hand first with
 * `create index concurrently` (the statement here then finds it and does nothing).
 */
export const operationsMigration: Migration = {
  version: 4,
  name: 'operations',
  sql: (s) => `
    -- Who did what, when and why: releases, discards, resends, repairs, replays, backlog changes (O7).
    -- A discarded outbox row is deleted from the outbox; its full content is kept here in details.
    create table if not exists ${s}.operation_audit (
      id          bigserial primary key,
      at          timestamptz not null default now(),
      actor       text not null,
      action      text not null,
      subject     text not null,
      message_id  text,
      reason      text,
      details     jsonb not null default '{}'::jsonb
    );
    create index if not exists operation_audit_message on ${s}.operation_audit (message_id) where message_id is not null;
    create index if not exists operation_audit_at on ${s}.operation_audit (at);

    -- trace and reconcile look applied and dead-lettered messages up by message id
    create index if not exists inbox_message_id on ${s}.inbox (message_id);
    create index if not exists dead_letter_message_id on ${s}.dead_letter (message_id);
    -- the metrics collector and status read recent transitions by time
    create index if not exists outbox_transition_at on ${s}.outbox_transition (at);

    -- One row per reconciliation run (O2): its window, verdict and report (counts and the first ids).
    create table if not exists ${s}.reconcile_run (
      id           bigserial primary key,
      kind         text not null,
      window_from  timestamptz not null,
      window_to    timestamptz not null,
      started_at   timestamptz not null default now(),
      finished_at  timestamptz,
      verdict      text,
      report       jsonb
    );
    create index if not exists reconcile_run_started on ${s}.reconcile_run (started_at);

    -- Producer sequence gaps and duplicates seen by consumers (C9), recorded by recordSequenceAlarms().
    create table if not exists ${s}.sequence_alarm (
      id              bigserial primary key,
      at              timestamptz not null default now(),
      consumer_group  text not null,
      kind            text not null check (kind in ('gap', 'duplicate')),
      topic           text not null,
      msg_partition   integer not null,
      producer_id     text not null,
      msg_key         text not null,
      expected        bigint not null,
      received        bigint not null,
      missing         bigint not null
    );
    create index if not exists sequence_alarm_at on ${s}.sequence_alarm (at);

    -- Divert rules (O4): messages of a type enqueued for a topic go to another topic instead. msg_type '*'
    -- matches every type. Applied at enqueue, so the outbox row, the relay, trace and reconcile all agree.
    create table if not exists ${s}.topic_divert (
      topic         text not null,
      msg_type      text not null,
      target_topic  text not null,
      created_at    timestamptz not null default now(),
      created_by    text not null,
      reason        text,
      primary key (topic, msg_type)
    );

    -- The body is one line on purpose: migrations are split into statements at line-ending semicolons.
    create or replace function ${s}.outbox_divert() returns trigger language plpgsql as $$ declare target text; begin select d.target_topic into target from ${s}.topic_divert d where d.topic = new.topic and d.msg_type in (new.msg_type, '*') order by (d.msg_type = '*') limit 1; if target is not null then new.topic := target; end if; return new; end $$;
    create or replace trigger outbox_divert before insert on ${s}.outbox for each row execute function ${s}.outbox_divert();
  `,
};
