import { loadDriver } from '../../shared/load-driver.ts';

/**
 * pg-logical-replication, the one place the WAL relay loads it (an optional peer: see load-driver.ts).
 * Imported lazily by the WAL stream only, so `zeroloss/postgres` works without it in polling mode.
 */
export const logicalReplication = await loadDriver(
  'pg-logical-replication',
  'zeroloss/postgres (relay mode wal)',
  () => import('pg-logical-replication'),
);
