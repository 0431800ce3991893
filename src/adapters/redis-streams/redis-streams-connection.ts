import type { Redis } from 'ioredis';
import { ioredis } from '../redis/redis-driver.ts';

/**
 * A connection for the transport. Commands are not retried by the client after a reconnect: an XADD
 * that may or may not have landed is reported as failed and the relay decides (a resend is a
 * duplicate, which the inbox absorbs), instead of ioredis resending it behind our back.
 */
export function connectRedis(url: string, commandTimeoutMs: number, name: string): Redis {
  const redis = new ioredis.Redis(url, {
    connectionName: name,
    // RESP2 replies: stream reads as [stream, entries] pairs, whatever mapping a newer client defaults to.
    protocol: 2,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.min(commandTimeoutMs, 10_000),
    retryStrategy: (times) => Math.min(2_000, 50 * times),
  });
  // Connection errors are expected while Redis is down; commands report them as failures.
  redis.on('error', () => {});
  return redis;
}
