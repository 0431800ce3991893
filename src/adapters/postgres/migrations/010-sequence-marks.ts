import type { Migration } from '../migrations.ts';

/**
 * Persistent loss detection (C9). sequence_mark: per consumer group and (topic, producer, key), the highest
 * producer sequence the group applied, written in the effect transaction with the inbox rows, so the
 * baseline survives restarts and rebalances. sequence_gap: the ranges found missing, from the moment they
 * are seen until records fill them (healed) — `from_seq` moves up as the front of a gap is filled, and the
 * gap is healed once it passes `to_seq`. A tail gap is one found by comparing with the producer's own marks
 * (the control channel), not by a later record; `at_offset` is where the producer says its last one sits.
 *
 * The unique index on open gaps (one per key and first missing number) is what merges the same gap seen
 * twice: by the producer's marks and later by the next record, or by two marks messages.
 */
export const sequenceMarksMigration: Migration = {
  version: 10,
  name: 'sequence-marks',
  sql: (s) => `
    create table if not exists ${s}.sequence_mark (
      consumer_group  text not null,
      topic           text not null,
      producer_id     text not null,
      msg_key         text not null,
      last_seq        bigint not null,
      msg_partition   integer not null,
      msg_offset      bigint not null,
      updated_at      timestamptz not null default now(),
      primary key (consumer_group, topic, producer_id, msg_key)
    ) with (fillfactor = 70);

    create table if not exists ${s}.sequence_gap (
      id                  bigserial primary key,
      consumer_group      text not null,
      topic               text not null,
      msg_partition       integer not null,
      producer_id         text not null,
      msg_key             text not null,
      from_seq            bigint not null,
      to_seq              bigint not null,
      missing_from        bigint not null,
      tail                boolean not null default false,
      at_offset           bigint,
      detected_at         timestamptz not null default now(),
      healed_at           timestamptz,
      alarmed_at          timestamptz,
      repair_requests     integer not null default 0,
      repair_requested_at timestamptz,
      next_repair_at      timestamptz
    );
    create unique index if not exists sequence_gap_open on ${s}.sequence_gap (consumer_group, topic, producer_id, msg_key, from_seq)
      where healed_at is null;
    create index if not exists sequence_gap_open_by_group on ${s}.sequence_gap (consumer_group, detected_at) where healed_at is null;
  `,
};
