import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { SubscribeOptions, Subscriber } from '../../ports/transport.ts';
import { checkSubscribeOptions } from '../shared/check-subscribe-options.ts';
import { groupMemberConfigFields, newMemberId, SESSION_TIMEOUT_RULE, sessionCoversHeartbeats } from '../shared/group-member-config.ts';
import { RedisStreamsSubscription } from './redis-streams-subscription.ts';

export const redisStreamsSubscriberConfigSchema = z
  .object({
    ...groupMemberConfigFields,
    /** redis://host:port/db */
    url: z.string().min(1),
    /** Namespace of the transport's keys; publishers and subscribers of one deployment share it. */
    prefix: z.string().min(1).default('zl'),
    /** Longest XREADGROUP block while waiting for new entries. */
    pollIntervalMs: z.number().int().positive().default(1_000),
    commandTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict()
  .refine(sessionCoversHeartbeats, SESSION_TIMEOUT_RULE);

export type RedisStreamsSubscriberConfig = z.input<typeof redisStreamsSubscriberConfigSchema>;

export interface RedisStreamsSubscriberEvents {
  /** Background trouble (Redis errors, a throwing callback). The subscription keeps going. */
  error: [Error];
}

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
    const subscription = new RedisStreamsSubscription({
      memberId: newMemberId(this.config.clientId),
      settings: this.config,
      subscribe: checked,
      onError: (error) => this.emit('error', error),
    });
    await subscription.start();
    return subscription;
  }
}
