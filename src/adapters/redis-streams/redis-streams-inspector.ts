import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { HEADER } from '../../core/envelope.ts';
import type {
  BrokerInspector,
  BrokerRecord,
  CommittedOffset,
  PartitionRange,
  PartitionWatermarks,
  ReadStats,
} from '../../ports/broker-inspector.ts';
import { readPartitionCounts } from './redis-streams-admin.ts';
import { connectRedis } from './redis-streams-connection.ts';
import { redisError } from './redis-streams-errors.ts';
import { redisStreamsKeys } from './redis-streams-keys.ts';
import { idOfOffset, offsetOfId } from './redis-streams-offsets.ts';
import { replyFields } from './redis-reply-fields.ts';

export const redisStreamsInspectorConfigSchema = z
  .object({
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. */
    prefix: z.string().min(1).default('zl'),
    commandTimeoutMs: z.number().int().positive().default(10_000),
    /** Entries per XRANGE: what `read` holds in memory per partition at a time. */
    batchRecords: z.number().int().positive().default(500),
  })
  .strict();

export type RedisStreamsInspectorConfig = z.input<typeof redisStreamsInspectorConfigSchema>;

/**
 * Operations' read-only view of Redis Streams: XRANGE reads a stream without a consumer group, so reconcile,
 * trace and status look at the broker without taking anything from a consumer.
 *
 * Times: the publisher appends with ids `0-*` (dense offsets, see redis-streams-offsets.ts), so an entry id
 * carries no time. A record's timestamp is its `zl-created-at` header (when the outbox committed it), and
 * `offsetsForTime` binary-searches on it: created-at grows with the offset closely enough for the slack the
 * callers already read around a window (the relay publishes in commit order), never exactly.
 */
export class RedisStreamsInspector implements BrokerInspector {
  readonly config: Readonly<z.output<typeof redisStreamsInspectorConfigSchema>>;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof redisStreamsKeys>;

  constructor(config: RedisStreamsInspectorConfig) {
    this.config = parseConfig(redisStreamsInspectorConfigSchema, config, 'redis streams inspector');
    this.#redis = connectRedis(this.config.url, this.config.commandTimeoutMs, 'zeroloss-inspector');
    this.#keys = redisStreamsKeys(this.config.prefix);
  }

  async listTopics(): Promise<string[]> {
    const head = this.#keys.topic('');
    const topics: string[] = [];
    try {
      const keys = this.#redis.scanStream({ match: `${escapeGlob(head)}*`, count: 500 });
      for await (const batch of keys as AsyncIterable<string[]>) for (const k of batch) topics.push(k.slice(head.length));
    } catch (error) {
      throw redisError(error, 'listing topics');
    }
    return [...new Set(topics)].sort();
  }

  async watermarks(topic: string): Promise<PartitionWatermarks[] | undefined> {
    const count = await this.#partitions(topic);
    if (count === undefined) return undefined;
    const pipeline = this.#redis.pipeline();
    for (let p = 0; p < count; p++) pipeline.call('XINFO', 'STREAM', this.#keys.stream(topic, p));
    const replies = await this.#exec(pipeline, `reading the watermarks of ${topic}`);
    return replies.map(([error, reply], partition) => {
      // A partition whose stream was deleted holds nothing.
      if (error) return { partition, low: 0n, high: 0n };
      const info = replyFields(reply as unknown[]);
      const high = offsetOfId(String(info.get('last-generated-id') ?? '0-0')) + 1n;
      const first = info.get('first-entry') as [string, ...unknown[]] | null | undefined;
      return { partition, low: first ? offsetOfId(String(first[0])) : high, high };
    });
  }

  async offsetsForTime(topic: string, atMs: number): Promise<Array<{ partition: number; offset: bigint }>> {
    const marks = (await this.watermarks(topic)) ?? [];
    const out: Array<{ partition: number; offset: bigint }> = [];
    for (const m of marks) {
      const stream = this.#keys.stream(topic, m.partition);
      // The first entry at or after `offset`, skipping deleted ids; undefined past the end.
      const at = async (offset: bigint) => {
        const found = (await this.#redis.xrange(stream, idOfOffset(offset), '+', 'COUNT', 1)) as Array<[string, string[]]>;
        return found[0] ? { offset: offsetOfId(found[0][0]), time: createdAtOf(fieldMap(found[0][1]).get('h')) } : undefined;
      };
      let lo = m.low;
      let hi = m.high;
      try {
        while (lo < hi) {
          const mid = lo + (hi - lo) / 2n;
          const entry = await at(mid);
          // Ids between `mid` and the entry found were deleted, so reading from `mid` is reading from it.
          if (!entry || entry.offset >= hi || entry.time >= atMs) hi = mid;
          else lo = entry.offset + 1n;
        }
      } catch (error) {
        throw redisError(error, `finding ${topic}/${m.partition} at ${new Date(atMs).toISOString()}`);
      }
      out.push({ partition: m.partition, offset: lo });
    }
    return out;
  }

  async *read(ranges: PartitionRange[], stats: ReadStats = { records: 0, incomplete: [] }): AsyncIterable<BrokerRecord> {
    for (const range of ranges) {
      if (range.from >= range.to) continue;
      const stream = this.#keys.stream(range.topic, range.partition);
      let position = range.from;
      let gapReported = false;
      while (position < range.to) {
        let entries: Array<[Buffer, Buffer[]]>;
        try {
          entries = (await this.#redis.xrangeBuffer(
            stream,
            idOfOffset(position),
            idOfOffset(range.to - 1n),
            'COUNT',
            this.config.batchRecords,
          )) as unknown as Array<[Buffer, Buffer[]]>;
        } catch (error) {
          stats.incomplete.push({ ...where(range), reached: position, reason: `XRANGE failed: ${String(error)}` });
          break;
        }
        if (entries.length === 0) {
          // Nothing up to `to`: entries there were deleted (XTRIM, XDEL) after the watermarks were read.
          if (!gapReported) stats.incomplete.push({ ...where(range), reached: position, reason: 'entries deleted from the stream' });
          break;
        }
        for (const [rawId, rawFields] of entries) {
          const offset = offsetOfId(rawId.toString());
          if (offset > position && !gapReported) {
            gapReported = true;
            stats.incomplete.push({ ...where(range), reached: position, reason: 'entries deleted from the stream (XTRIM or XDEL)' });
          }
          position = offset + 1n;
          stats.records++;
          yield toRecord(range, offset, rawFields);
        }
      }
    }
  }

  /**
   * Per partition stream where the group exists, the next offset it reads with everything below done: its
   * oldest pending (read, not acknowledged) entry, or the one after the last it was delivered.
   */
  async committedOffsets(groupId: string): Promise<CommittedOffset[]> {
    const out: CommittedOffset[] = [];
    for (const topic of await this.listTopics()) {
      const count = (await this.#partitions(topic)) ?? 0;
      const pipeline = this.#redis.pipeline();
      for (let p = 0; p < count; p++) pipeline.call('XINFO', 'GROUPS', this.#keys.stream(topic, p));
      const replies = await this.#exec(pipeline, `reading the groups of ${topic}`);
      for (const [partition, [error, reply]] of replies.entries()) {
        if (error) continue;
        const group = (reply as unknown[][]).map(replyFields).find((g) => String(g.get('name')) === groupId);
        if (!group) continue;
        let offset = offsetOfId(String(group.get('last-delivered-id') ?? '0-0')) + 1n;
        if (Number(group.get('pending') ?? 0) > 0) {
          const summary = (await this.#redis.call('XPENDING', this.#keys.stream(topic, partition), groupId)) as unknown[];
          if (summary[1]) offset = offsetOfId(String(summary[1]));
        }
        out.push({ topic, partition, offset });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #partitions(topic: string): Promise<number | undefined> {
    try {
      return (await readPartitionCounts(this.#redis, this.#keys, [topic])).get(topic);
    } catch (error) {
      throw redisError(error, `reading the partitions of ${topic}`);
    }
  }

  async #exec(pipeline: ReturnType<Redis['pipeline']>, doing: string): Promise<Array<[Error | null, unknown]>> {
    try {
      return (await pipeline.exec()) ?? [];
    } catch (error) {
      throw redisError(error, doing);
    }
  }
}

function where(range: PartitionRange): { topic: string; partition: number; to: bigint } {
  return { topic: range.topic, partition: range.partition, to: range.to };
}

/** An entry as the publisher wrote it: fields k (key), h (headers JSON), v (value). */
function toRecord(range: PartitionRange, offset: bigint, raw: Buffer[]): BrokerRecord {
  const fields = fieldMap(raw);
  const headers = headersOf(fields.get('h'));
  const created = Date.parse(headers[HEADER.createdAt] ?? '');
  return {
    topic: range.topic,
    partition: range.partition,
    offset,
    timestamp: Number.isFinite(created) ? created : 0,
    key: fields.get('k')?.toString() ?? '',
    value: Buffer.isBuffer(fields.get('v')) ? (fields.get('v') as Buffer) : Buffer.from(String(fields.get('v') ?? '')),
    headers,
  };
}

function fieldMap<T extends string | Buffer>(flat: T[] | null): Map<string, T> {
  const out = new Map<string, T>();
  for (let i = 0; flat && i + 1 < flat.length; i += 2) out.set(flat[i]!.toString(), flat[i + 1]!);
  return out;
}

function headersOf(raw: string | Buffer | undefined): Record<string, string> {
  try {
    const parsed: unknown = JSON.parse(raw?.toString() ?? '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, string>;
  } catch {
    // An entry someone else wrote: no headers to read.
  }
  return {};
}

/** An entry without a readable created-at sorts as oldest, so a search moves past it. */
function createdAtOf(raw: string | Buffer | undefined): number {
  const created = Date.parse(headersOf(raw)[HEADER.createdAt] ?? '');
  return Number.isFinite(created) ? created : Number.NEGATIVE_INFINITY;
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
