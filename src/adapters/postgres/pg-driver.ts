import { loadDriver } from '../shared/load-driver.ts';

/** node-postgres, the one place the postgres adapter loads it (an optional peer: see load-driver.ts). */
export const pg = await loadDriver('pg', 'zeroloss/postgres', () => import('pg'));
