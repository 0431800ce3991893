import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { SubscribeOptions, Subscriber } from '../../ports/transport.ts';
import { RedisStreamsSubscription } from './redis-streams-subscription.ts';

export const redisStreamsSubscriberConfigSchema = z
  .object({
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. */
    prefix: z.string().min(1).default('zl'),
    /** Prefix of member ids (a random suffix keeps each subscription unique); default host-pid. */
    clientId: z.string().min(1).max(100).optional(),
    /** Session and lease renewal interval, and how often the assignment is recomputed. */
    heartbeatIntervalMs: z.number().int().positive().default(1_000),
    /** A member that has not renewed for this long is dead: its leases run out and others take its partitions. */
    sessionTimeoutMs: z.number().int().positive().default(10_000),
    /** Longest XREADGROUP block while waiting for new entries. */
    pollIntervalMs: z.number().int().positive().default(1_000),
    /** Most records in one onRecords batch (one partition). */
    maxBatchRecords: z.number().int().positive().default(500),
    /** Where a group starts on a partition it has never read: the first entry, or new entries only. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
    /** How long onRevoke may take before the partition is handed back anyway. */
    rebalanceTimeoutMs: z.number().int().positive().default(60_000),
    commandTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict()
  .refine((c) => c.sessionTimeoutMs >= 2 * c.heartbeatIntervalMs, {
    message: 'must be at least twice heartbeatIntervalMs',
    path: ['sessionTimeoutMs'],
  });

export type RedisStreamsSubscriberConfig = z.input<typeof redisStreamsSubscriberConfigSchema>;

export interface RedisStreamsSubscriberEvents {
  /** Background trouble (Redis errors, a throwing callback). The subscription keeps going. */
  error: [Error];
}

const MAX_GROUP_ID = 200;

/**
 * Consumer groups over Redis Streams: Redis's own consumer groups track what was delivered (the pending
 * entries list) and acknowledged (XACK, only on commit); zeroloss adds partition ownership on top, with
 * a lease per partition, so one key is never read by two members at once.
 */
export class RedisStreamsSubscriber extends EventEmitter<RedisStreamsSubscriberEvents> implements Subscriber {
  readonly config: Readonly<z.output<typeof redisStreamsSubscriberConfigSchema>>;

  constructor(config: RedisStreamsSubscriberConfig) {
    super();
    this.config = parseConfig(redisStreamsSubscriberConfigSchema, config, 'redis streams subscriber');
    // Without a listener an 'error' event would throw; background errors are reported, never fatal.
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<RedisStreamsSubscription> {
    const checked = checkSubscribeOptions(options);
    const prefix = this.config.clientId ?? `${hostname()}-${process.pid}`;
    const subscription = new RedisStreamsSubscription({
      memberId: `${prefix}-${randomBytes(4).toString('hex')}`,
      settings: this.config,
      subscribe: checked,
      onError: (error) => this.emit('error', error),
    });
    await subscription.start();
    return subscription;
  }
}

function checkSubscribeOptions(options: SubscribeOptions): SubscribeOptions {
  if (options === null || typeof options !== 'object') throw new ZerolossError('ZL_INVALID_CONFIG', 'subscribe options must be an object');
  const { groupId, topics, onRecords, onRevoke, onAssign } = options;
  if (typeof groupId !== 'string' || groupId.length === 0 || groupId.length > MAX_GROUP_ID) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `groupId must be a string of 1-${MAX_GROUP_ID} characters`);
  }
  if (!Array.isArray(topics) || topics.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'topics must be a non-empty array');
  for (const topic of topics) validateTopic(topic);
  if (typeof onRecords !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onRecords must be a function');
  if (onRevoke !== undefined && typeof onRevoke !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onRevoke must be a function');
  if (onAssign !== undefined && typeof onAssign !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onAssign must be a function');
  return { ...options, topics: [...new Set(topics)].sort() };
}
