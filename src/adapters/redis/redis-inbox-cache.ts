import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ioredis } from './redis-driver.ts';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { InboxCache } from '../../ports/inbox-cache.ts';

export const redisInboxCacheConfigSchema = z
  .object({
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace for this application's keys. */
    prefix: z.string().default('zl'),
    /** Lifetime of a remembered key (C4: 24 h). */
    ttlMs: z.number().int().positive().default(86_400_000),
    /** A command slower than this counts as "cache unavailable": the database decides instead. */
    commandTimeoutMs: z.number().int().positive().default(200),
  })
  .strict();

export type RedisInboxCacheConfig = z.input<typeof redisInboxCacheConfigSchema>;

/**
 * Deletes the lock only if it still holds our token, so a copy whose lock expired cannot release the
 * lock a later copy took. KEYS[1] lock key; ARGV[1] token. Returns 1 if deleted, else 0.
 */
const UNLOCK_SCRIPT = `
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0`;

/**
 * The inbox fast path over Redis. Never the source of truth: commands fail fast while Redis is down
 * (no offline queue, a short timeout), every failure reads as "unavailable", and the consumer then lets
 * the inbox row decide. A flushed Redis only costs database round trips.
 *
 * Keys: `<prefix>:inbox:<group>:<key>` = '1' with the TTL; `<prefix>:lock:<group>:<key>` = token, PX ttl.
 */
export class RedisInboxCache implements InboxCache {
  readonly config: Readonly<z.output<typeof redisInboxCacheConfigSchema>>;
  readonly #redis: Redis;

  constructor(config: RedisInboxCacheConfig) {
    this.config = parseConfig(redisInboxCacheConfigSchema, config, 'redis inbox cache');
    this.#redis = new ioredis.Redis(this.config.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.config.commandTimeoutMs,
      connectTimeout: 2_000,
      lazyConnect: false,
      // Keep trying to reconnect in the background, at most every 2 s.
      retryStrategy: (times) => Math.min(2_000, 50 * times),
    });
    // Connection errors are expected while Redis is down; they surface as "unavailable" answers.
    this.#redis.on('error', () => {});
  }

  async has(groupId: string, idempotencyKey: string): Promise<boolean | undefined> {
    try {
      return (await this.#redis.exists(this.#key('inbox', groupId, idempotencyKey))) === 1;
    } catch {
      return undefined;
    }
  }

  async add(groupId: string, idempotencyKey: string): Promise<void> {
    try {
      await this.#redis.set(this.#key('inbox', groupId, idempotencyKey), '1', 'PX', this.config.ttlMs);
    } catch {
      // Best effort: a missed write costs one database check later.
    }
  }

  async lock(groupId: string, idempotencyKey: string, ttlMs: number): Promise<string | null | undefined> {
    const token = randomBytes(12).toString('hex');
    try {
      const ok = await this.#redis.set(this.#key('lock', groupId, idempotencyKey), token, 'PX', ttlMs, 'NX');
      return ok === 'OK' ? token : null;
    } catch {
      return undefined;
    }
  }

  async unlock(groupId: string, idempotencyKey: string, token: string): Promise<void> {
    try {
      await this.#redis.eval(UNLOCK_SCRIPT, 1, this.#key('lock', groupId, idempotencyKey), token);
    } catch {
      // The lock expires by itself.
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }

  #key(kind: 'inbox' | 'lock', groupId: string, idempotencyKey: string): string {
    return `${this.config.prefix}:${kind}:${groupId}:${idempotencyKey}`;
  }
}
