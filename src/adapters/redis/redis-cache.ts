import type { Cache } from '../../ports/backends.ts';
import { type RedisInboxCacheConfig, RedisInboxCache } from './redis-inbox-cache.ts';

export interface RedisCache extends Cache {
  readonly kind: 'redis';
  readonly inboxCache: RedisInboxCache;
}

/** Redis as the consumer's inbox fast path: a duplicate is skipped without a database round trip. Correctness never depends on it. */
export function redis(url: string, options: Omit<RedisInboxCacheConfig, 'url'> = {}): RedisCache {
  const inboxCache = new RedisInboxCache({ ...options, url });
  return { kind: 'redis', inboxCache, close: () => inboxCache.close() };
}
