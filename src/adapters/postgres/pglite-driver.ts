import { loadDriver } from '../shared/load-driver.ts';

/** PGlite, the one place zeroloss loads it (the embedded store and the demo). */
export const pglite = await loadDriver('@electric-sql/pglite', 'zeroloss/pglite', () => import('@electric-sql/pglite'));
