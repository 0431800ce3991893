import { loadDriver } from '../shared/load-driver.ts';

/**
 * ioredis, the one place zeroloss loads it: the Redis inbox cache and the Redis Streams transport share it
 * (an optional peer: see load-driver.ts). Both entry points need the same package, so the hint names
 * zeroloss/redis for either.
 */
export const ioredis = await loadDriver('ioredis', 'zeroloss/redis', () => import('ioredis'));
