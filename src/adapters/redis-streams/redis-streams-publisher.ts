import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { OutgoingRecord } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import type { PublishOutcome, Publisher } from '../../ports/transport.ts';
import { checkOutgoingRecord } from '../shared/check-outgoing-record.ts';
import { PartitionCountCache } from '../shared/partition-count-cache.ts';
import { partitionFor } from '../../core/partition-for.ts';
import { publisherConfigFields } from '../shared/publisher-config-fields.ts';
import { screenRecords } from '../shared/screen-records.ts';
import { readPartitionCounts } from './redis-streams-admin.ts';
import { connectRedis } from './redis-streams-connection.ts';
import { redisError } from './redis-streams-errors.ts';
import { redisStreamsKeys } from './redis-streams-keys.ts';
import { offsetOfId } from './redis-streams-offsets.ts';
import { PUBLISH, runScript } from './redis-streams-scripts.ts';

export const redisStreamsPublisherConfigSchema = z
  .object({
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. */
    prefix: z.string().min(1).default('zl'),
    ...publisherConfigFields,
    /** Upper bound on one Redis round trip. Keep it below the relay lease. */
    commandTimeoutMs: z.number().int().positive().default(30_000),
  })
  .strict();

export type RedisStreamsPublisherConfig = z.input<typeof redisStreamsPublisherConfigSchema>;

const RULES = { missingTopic: 'on Redis: create it with RedisStreamsAdmin.createTopic' };

/** Records per script call and their rough byte budget: one call blocks Redis while it runs. */
const CHUNK_RECORDS = 500;
const CHUNK_BYTES = 8 * 1_048_576;

interface Planned {
  index: number;
  slot: string;
  stream: string;
  partition: number;
  key: string;
  headers: string;
  value: Buffer;
}

/**
 * Publishes to Redis Streams: a stream per partition, the key's partition by Kafka's murmur2, so a key
 * keeps the partition it would have on Kafka. A record counts as sent only once Redis replied with its
 * entry id. Whether that reply means "on disk" is Redis's persistence setting (appendonly yes with
 * appendfsync always keeps the promise on one node; see docs/transports.md).
 */
export class RedisStreamsPublisher implements Publisher {
  readonly config: Readonly<z.output<typeof redisStreamsPublisherConfigSchema>>;
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof redisStreamsKeys>;
  readonly #counts: PartitionCountCache;

  constructor(config: RedisStreamsPublisherConfig) {
    this.config = parseConfig(redisStreamsPublisherConfigSchema, config, 'redis streams publisher');
    this.#redis = connectRedis(this.config.url, this.config.commandTimeoutMs, 'zeroloss-publisher');
    this.#keys = redisStreamsKeys(this.config.prefix);
    this.#counts = new PartitionCountCache(this.config.metadataMaxAgeMs);
  }

  async publish(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    if (records.length === 0) return [];
    let counts: Map<string, number>;
    try {
      counts = await this.#partitionCounts(records);
    } catch (error) {
      const failure = redisError(error, 'reading topic metadata');
      return records.map(() => ({ ok: false, error: failure, attempted: true }));
    }
    const planned: Planned[] = [];
    const check = (record: OutgoingRecord) => checkOutgoingRecord(record, counts, this.config.maxRecordBytes, RULES);
    // Screening already held back what follows a record it refused; a planned record of such a key came
    // before the refused one, so it goes. Only failures while sending hold back later chunks' records.
    const { outcomes } = screenRecords(records, check, (record, index, slot) => {
      const partition = partitionFor(record.key, counts.get(record.topic)!);
      planned.push({
        index,
        slot,
        stream: this.#keys.stream(record.topic, partition),
        partition,
        key: record.key,
        headers: JSON.stringify(record.headers ?? {}),
        value: Buffer.isBuffer(record.value) ? record.value : Buffer.from(record.value),
      });
    });
    const failed = new Map<string, ZerolossError>();
    for (const chunk of chunks(planned)) await this.#append(chunk, outcomes, failed);
    return outcomes as PublishOutcome[];
  }

  /** Appends one chunk; a key that failed in an earlier chunk is held back here too. */
  async #append(chunk: Planned[], outcomes: Array<PublishOutcome | undefined>, failed: Map<string, ZerolossError>): Promise<void> {
    const send: Planned[] = [];
    for (const p of chunk) {
      const held = failed.get(p.slot);
      if (held) outcomes[p.index] = { ok: false, error: held, attempted: false };
      else send.push(p);
    }
    if (send.length === 0) return;
    const streams = [...new Set(send.map((p) => p.stream))];
    const at = new Map(streams.map((s, i) => [s, i + 1]));
    const args: Array<string | Buffer | number> = [send.length];
    for (const p of send) args.push(at.get(p.stream)!, p.key, p.headers, p.value);
    let replies: string[];
    try {
      replies = (await runScript(this.#redis, PUBLISH, streams, args)) as string[];
    } catch (error) {
      // No reply: some of the chunk may have landed. Every record is failed and its key held back, so a
      // resend repeats them in order (duplicates the inbox absorbs) and never skips ahead of one.
      const failure = redisError(error, 'appending to Redis streams');
      for (const p of send) {
        failed.set(p.slot, failure);
        outcomes[p.index] = { ok: false, error: failure, attempted: true };
      }
      return;
    }
    send.forEach((p, i) => {
      const reply = String(replies[i]);
      if (!reply.startsWith('!')) {
        outcomes[p.index] = { ok: true, partition: p.partition, offset: offsetOfId(reply) };
        return;
      }
      const failure = replyFailure(reply, p);
      if (reply !== '!held') failed.set(p.slot, failure);
      outcomes[p.index] = { ok: false, error: failed.get(p.slot) ?? failure, attempted: reply !== '!held' };
    });
  }

  async #partitionCounts(records: OutgoingRecord[]): Promise<Map<string, number>> {
    const now = Date.now();
    const { counts, stale } = this.#counts.lookup(records, now);
    for (const [topic, partitions] of await readPartitionCounts(this.#redis, this.#keys, stale)) {
      counts.set(topic, partitions);
      this.#counts.remember(topic, partitions, now);
    }
    return counts;
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

function replyFailure(reply: string, p: Planned): ZerolossError {
  if (reply === '!missing') {
    return new ZerolossError(
      'ZL_TOPIC_UNAVAILABLE',
      `stream ${p.stream} does not exist: create its topic with RedisStreamsAdmin.createTopic`,
      {
        retryable: true,
        details: { stream: p.stream },
      },
    );
  }
  if (reply === '!held') return new ZerolossError('ZL_SEND_FAILED', 'an earlier record of this key failed', { retryable: true });
  return new ZerolossError('ZL_SEND_FAILED', `Redis refused XADD to ${p.stream}: ${reply.slice(1)}`, { retryable: true });
}

function* chunks(planned: Planned[]): Generator<Planned[]> {
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < planned.length; i++) {
    const size = planned[i]!.value.length + planned[i]!.headers.length;
    if (i > from && (i - from >= CHUNK_RECORDS || bytes + size > CHUNK_BYTES)) {
      yield planned.slice(from, i);
      from = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (from < planned.length) yield planned.slice(from);
}
