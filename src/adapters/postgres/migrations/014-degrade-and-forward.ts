import type { Migration } from '../migrations.ts';

/**
 * Degrading at peak (`zeroloss backlog degrade`) and the record of forwarded backlogs
 * (`zeroloss backlog forward`).
 *
 * - degrade_switch: one row per named switch that handlers and consumers read (through a cached reader,
 *   never per message) to skip optional work or defer non-core types. Every change also writes an
 *   operation_audit row, in the same statement.
 * - backlog_forward: one row per forward run — the source ranges it copied, where to, how many, whether it
 *   finished — written before the copy starts, so even a run that died midway says what it may have
 *   copied. If the target later loses records, the same ranges can be forwarded again from the row.
 */
export const degradeAndForwardMigration: Migration = {
  version: 14,
  name: 'degrade-and-forward',
  sql: (s) => `
    create table if not exists ${s}.degrade_switch (
      name        text primary key,
      is_on       boolean not null,
      since       timestamptz not null default now(),
      changed_by  text not null,
      reason      text
    );

    create table if not exists ${s}.backlog_forward (
      id               bigserial primary key,
      started_at       timestamptz not null default now(),
      finished_at      timestamptz,
      from_topic       text not null,
      to_topic         text not null,
      consumer_group   text not null,
      to_partitions    integer not null,
      -- [{ "partition": 0, "from": "120", "to": "5120" }]: offsets [from, to) of from_topic
      ranges           jsonb not null,
      planned          bigint not null,
      forwarded        bigint not null default 0,
      error            text,
      again_of         bigint references ${s}.backlog_forward (id),
      actor            text not null,
      reason           text
    );
    create index if not exists backlog_forward_started on ${s}.backlog_forward (started_at);
  `,
};
