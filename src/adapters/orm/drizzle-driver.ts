import { loadDriver } from '../shared/load-driver.ts';

/** drizzle-orm, loaded once for fromDrizzle (an optional peer: see load-driver.ts). */
export const drizzle = await loadDriver('drizzle-orm', 'zeroloss/drizzle', () => import('drizzle-orm'));
