/**
 * Redis Streams: the relay against an ioredis XADD pipeline of the same records, and the consumer against
 * XREADGROUP + XACK with the same effect transaction and no inbox. Both sides use the transport's layout
 * (a stream per partition, murmur2 partitioning, fields k/h/v), so they put and read the same entries.
 */
import { Redis } from 'ioredis';
import { redisStreamsKeys } from '../src/adapters/redis-streams/redis-streams-keys.ts';
import { HEADER, type OutgoingRecord } from '../src/core/envelope.ts';
import { partitionFor } from '../src/core/partition-for.ts';
import { redisStreams } from '../src/entry/redis-streams.ts';
import type { BenchEnv } from './lib/env.ts';
import { pool, uniqueName } from './lib/env.ts';
import type { Reps } from './lib/measure.ts';
import type { BenchResult } from './lib/result.ts';
import { CONSUMER_CONCURRENCY } from './consumer.ts';
import { RELAY_BATCH, RELAY_CONCURRENCY } from './relay.ts';
import { type Clock, PARTITIONS, type TransportSide, transportBenches } from './transport-bench.ts';

export const REDIS_URL = process.env.ZL_REDIS_URL ?? 'redis://127.0.0.1:6379';
const keys = redisStreamsKeys('zl');

function redisSide(): TransportSide {
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 3 });
  return {
    name: 'redis',
    transport: () => redisStreams(REDIS_URL),
    relayBaseline: `raw ioredis XADD pipeline, same records and streams, batches of ${RELAY_BATCH}, ${RELAY_CONCURRENCY} in flight (dual write)`,
    consumerBaseline: `raw ioredis XREADGROUP (COUNT 500) + XACK, same effect transaction, ${CONSUMER_CONCURRENCY} at once, no inbox (at-least-once)`,
    async rawPublish(records: OutgoingRecord[]) {
      const latencies: number[] = [];
      let next = 0;
      const loop = async () => {
        while (next < records.length) {
          const batch = records.slice(next, next + RELAY_BATCH);
          next += batch.length;
          const t0 = performance.now();
          const pipeline = redis.pipeline();
          for (const r of batch) {
            // Ids '0-<n>' as the transport writes them (the entry's offset is its sequence number); a
            // time-based id would sort after them and make every later zeroloss XADD fail.
            const stream = keys.stream(r.topic, partitionFor(r.key, PARTITIONS));
            pipeline.xadd(stream, 'NOMKSTREAM', '0-*', 'k', r.key, 'h', JSON.stringify(r.headers ?? {}), 'v', r.value as Buffer);
          }
          const replies = (await pipeline.exec()) ?? [];
          for (const [error] of replies) if (error) throw error;
          const ms = performance.now() - t0;
          for (let i = 0; i < batch.length; i++) latencies.push(ms);
        }
      };
      await Promise.all(Array.from({ length: RELAY_CONCURRENCY }, loop));
      return latencies;
    },
    async rawConsume(topic, messages, clock: Clock, effect) {
      const reader = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
      const group = uniqueName('zlb-raw');
      const streams = Array.from({ length: PARTITIONS }, (_, p) => keys.stream(topic, p));
      try {
        for (const stream of streams) await reader.xgroup('CREATE', stream, group, '0');
        while (clock.done < messages) {
          const reply = (await reader.xreadgroup(
            'GROUP',
            group,
            'raw',
            'COUNT',
            500,
            'BLOCK',
            100,
            'STREAMS',
            ...streams,
            ...streams.map(() => '>'),
          )) as Array<[string, Array<[string, string[]]>]> | null;
          if (!reply) continue;
          const entries = reply.flatMap(([stream, list]) => list.map(([id, fields]) => ({ stream, id, fields })));
          for (const e of entries) clock.arrive(`${e.stream}/${e.id}`);
          await pool(entries.length, CONSUMER_CONCURRENCY, async (i) => {
            const { stream, id, fields } = entries[i]!;
            const f = new Map<string, string>();
            for (let j = 0; j < fields.length; j += 2) f.set(fields[j]!, fields[j + 1]!);
            const headers = JSON.parse(f.get('h') ?? '{}') as Record<string, string>;
            await effect({ id: headers[HEADER.id] ?? id, key: f.get('k') ?? '', value: Buffer.from(f.get('v') ?? '', 'utf8') });
            clock.finish(`${stream}/${id}`);
          });
          const pipeline = reader.pipeline();
          for (const [stream, list] of reply) pipeline.xack(stream, group, ...list.map(([id]) => id));
          await pipeline.exec();
        }
      } finally {
        for (const stream of streams) await reader.xgroup('DESTROY', stream, group).catch(() => {});
        reader.disconnect();
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}

/** `npm run bench -- redis`: relay, WAL relay and consumer against ioredis. */
export function redisBenches(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  return transportBenches(redisSide, env, messages, reps);
}
