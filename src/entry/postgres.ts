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
