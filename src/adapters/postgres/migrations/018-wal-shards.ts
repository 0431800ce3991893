import type { Migration } from '../migrations.ts';

/**
 * The WAL relay's shards (docs/wal-relay.md, Shards): `wal_shard` holds one row per shard with its slot and
 * publication, written once by `relay --mode wal --create-slot --shards N`, so every relay reads the same
 * shard count and none can start with another. `wal_member` is the relays' membership: each running relay
 * keeps its row's `seen_at` fresh (the server's clock, so the relays' clocks do not matter), and the live
 * rows decide which relay should hold which shard. Neither table is on the enqueue path: the outbox
 * gets no index, trigger or column.
 */
export const walShardsMigration: Migration = {
  version: 18,
  name: 'wal-shards',
  sql: (s) => `
    create table if not exists ${s}.wal_shard (
      shard       integer primary key,
      shards      integer not null,
      slot        text not null unique,
      publication text not null unique,
      created_at  timestamptz not null default now(),
      check (shards > 0 and shard >= 0 and shard < shards)
    );
    create table if not exists ${s}.wal_member (
      member  text primary key,
      seen_at timestamptz not null default now()
    );
  `,
};
