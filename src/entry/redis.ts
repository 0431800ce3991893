/**
 * `zeroloss/redis`: Redis as the consumer's inbox fast path, through `ioredis` (an optional peer: install it).
 *
 *   createConsumer({ store, transport, cache: redis('redis://127.0.0.1:6379'), … })
 */
export { redis, type RedisCache } from '../adapters/redis/redis-cache.ts';
export type { RedisInboxCacheConfig } from '../adapters/redis/redis-inbox-cache.ts';
