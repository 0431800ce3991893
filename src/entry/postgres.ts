/**
 * `zeroloss/postgres`: zeroloss on PostgreSQL through node-postgres (`pg`, an optional peer: install it).
 *
 *   const store = postgres('postgres://…')   or   postgres(pool, { schema: 'zeroloss' })
 */
export { postgres, type PgPool, type PostgresOptions } from '../adapters/postgres/postgres.ts';
export type { StateColumnSource } from '../adapters/postgres/state-column-source.ts';
export {
  postgresStore,
  type PostgresStore,
  type PostgresStoreOptions,
  type StateColumnOptions,
} from '../adapters/postgres/postgres-store.ts';
export { MIGRATIONS, type Migration } from '../adapters/postgres/migrations.ts';
/** Degrade switches and the forward record (`DegradeSwitches`, `BacklogPolicy`, `forwardBacklog` in zeroloss/operations). */
export { PostgresBacklogStore } from '../adapters/postgres/postgres-backlog-store.ts';
/** Two-way confirmation's receipts on the producer's database: `confirmations({ store: new PostgresReceiptStore(store.db, { schema }) }, ids)`. */
export { PostgresReceiptStore } from '../adapters/postgres/postgres-receipt-store.ts';
/** Relay mode 'wal' (docs/wal-relay.md): `createRelay({ mode: 'wal', wal: postgresWal(store, { url }), transport })`; needs `pg-logical-replication`, loaded only when the stream opens. */
export { postgresWal, type PostgresWal, type PostgresWalOptions } from '../adapters/postgres/wal/postgres-wal.ts';
/** A sharded outbox for relay mode 'wal' (docs/wal-relay.md, Shards): `createRelay({ mode: 'wal', wal: postgresWalShards(store, { url }), transport })`. */
export { postgresWalShards, type PostgresWalShards } from '../adapters/postgres/wal/postgres-wal-shards.ts';
