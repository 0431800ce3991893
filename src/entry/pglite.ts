/**
 * `zeroloss/pglite`: zeroloss embedded, on PGlite (Postgres in WebAssembly, in this process).
 *
 *   const store = pglite('./data')   or   pglite()  (in memory)   or   pglite(myPGlite)
 */
export { pglite, type PgliteStore } from '../adapters/postgres/pglite.ts';
export type { PostgresStore, StateColumnOptions } from '../adapters/postgres/postgres-store.ts';
