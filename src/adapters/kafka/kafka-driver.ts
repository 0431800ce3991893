import { loadDriver } from '../shared/load-driver.ts';

/** @platformatic/kafka, the one place the kafka adapter loads it (an optional peer: see load-driver.ts). */
export const kafka = await loadDriver('@platformatic/kafka', 'zeroloss/kafka', () => import('@platformatic/kafka'));
