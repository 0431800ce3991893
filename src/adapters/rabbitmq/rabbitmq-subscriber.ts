import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { SubscribeOptions, Subscriber } from '../../ports/transport.ts';
import { RabbitMqSubscription } from './rabbitmq-subscription.ts';

export const rabbitMqSubscriberConfigSchema = z
  .object({
    /** amqp://user:password@host:port/vhost */
    url: z.string().min(1),
    /** Prefix of member ids (a random suffix keeps each subscription unique); default host-pid. */
    clientId: z.string().min(1).max(100).optional(),
    /** How often a member announces itself and the assignment is recomputed. */
    heartbeatIntervalMs: z.number().int().positive().default(1_000),
    /** A member not heard from for this long is left out of the assignment. */
    sessionTimeoutMs: z.number().int().positive().default(10_000),
    /** Most records in one onRecords batch (one partition). */
    maxBatchRecords: z.number().int().positive().default(500),
    /** Messages a partition's stream consumer may have outstanding (its credit). */
    prefetch: z.number().int().positive().default(1_000),
    /** Where a group starts on a partition it has never committed: the first retained message, or new ones only. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
    /** How long onRevoke may take before the partition is handed back anyway. */
    rebalanceTimeoutMs: z.number().int().positive().default(60_000),
    /** A group's committed offsets are dropped after this long unused, like Kafka's offsets.retention.minutes (7 days). */
    offsetRetentionMs: z
      .number()
      .int()
      .positive()
      // x-expires is a 32-bit argument on the broker.
      .max(2_147_483_647)
      .default(7 * 86_400_000),
    /** AMQP heartbeat: how soon the broker notices a dead member and frees its partitions. */
    amqpHeartbeatSeconds: z.number().int().positive().default(10),
  })
  .strict()
  .refine((c) => c.sessionTimeoutMs >= 2 * c.heartbeatIntervalMs, {
    message: 'must be at least twice heartbeatIntervalMs',
    path: ['sessionTimeoutMs'],
  });

export type RabbitMqSubscriberConfig = z.input<typeof rabbitMqSubscriberConfigSchema>;

export interface RabbitMqSubscriberEvents {
  /** Background trouble (RabbitMQ errors, a throwing callback). The subscription keeps going. */
  error: [Error];
}

const MAX_GROUP_ID = 200;

/**
 * Consumer groups over RabbitMQ streams. RabbitMQ 3.10 has no consumer groups for streams on AMQP, so
 * zeroloss keeps them: a partition is owned by whoever holds its lock queue, and a group's committed
 * offset lives in a one-message quorum queue per partition, written only by `commit`.
 */
export class RabbitMqSubscriber extends EventEmitter<RabbitMqSubscriberEvents> implements Subscriber {
  readonly config: Readonly<z.output<typeof rabbitMqSubscriberConfigSchema>>;

  constructor(config: RabbitMqSubscriberConfig) {
    super();
    this.config = parseConfig(rabbitMqSubscriberConfigSchema, config, 'rabbitmq subscriber');
    // Without a listener an 'error' event would throw; background errors are reported, never fatal.
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<RabbitMqSubscription> {
    const checked = checkSubscribeOptions(options);
    const prefix = this.config.clientId ?? `${hostname()}-${process.pid}`;
    const subscription = new RabbitMqSubscription({
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
