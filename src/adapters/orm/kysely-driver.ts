import { loadDriver } from '../shared/load-driver.ts';

/** Kysely, loaded once for fromKysely (an optional peer: see load-driver.ts). */
export const kysely = await loadDriver('kysely', 'zeroloss/kysely', () => import('kysely'));
