import type { Migration } from '../migrations.ts';

/**
 * `outbox_wal_batch`: what the WAL relay sent, one row per batch, in the insert-only mode (docs/wal-relay.md,
 * "Insert-only outbox"). In that mode a new outbox row is inserted with state 1 (the column's default is
 * switched by `relay --mode wal --create-slot --insert-only`): it never enters the unsent rows' partial
 * indexes, and the relay records its send by adding its seq_id, partition and offset to the batch's row
 * instead of updating the outbox row (one row per batch instead of one update per message, which cost the
 * relay a third to a half of its throughput: docs/benchmarks.md). A state-1 row without `sent_at` is sent
 * if a batch lists it, and still in the stream if none does (src/adapters/postgres/stream-sent-sql.ts says
 * how every reader derives it).
 *
 * The GiST index on the batch's seq_id range finds the batch of a row; `end_lsn` (the last whole commit the
 * batch holds, null when it holds a part of one only) tells a replay after a crash from a first send.
 */
export const walBatchMigration: Migration = {
  version: 21,
  name: 'wal-batch',
  sql: (s) => `
    create table if not exists ${s}.outbox_wal_batch (
      id          bigserial primary key,
      slot        text not null,
      end_lsn     pg_lsn,
      seq_lo      bigint not null,
      seq_hi      bigint not null,
      seq_ids     bigint[] not null,
      partitions  integer[] not null,
      offsets     bigint[] not null,
      at          timestamptz not null default now()
    );
    create index if not exists outbox_wal_batch_seq on ${s}.outbox_wal_batch using gist (int8range(seq_lo, seq_hi, '[]'));
    create index if not exists outbox_wal_batch_slot on ${s}.outbox_wal_batch (slot, end_lsn);
    create index if not exists outbox_wal_batch_at on ${s}.outbox_wal_batch (at);
  `,
};
