/**
 * `zeroloss/redis-streams`: Redis Streams as the transport, through `ioredis` (an optional peer: install it).
 *
 *   const transport = redisStreams('redis://127.0.0.1:6379')
 */
export { redisStreams, type RedisStreamsOptions, type RedisStreamsTransport } from '../adapters/redis-streams/redis-streams-transport.ts';
