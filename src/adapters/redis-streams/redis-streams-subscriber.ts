import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { groupMemberConfigFields, SESSION_TIMEOUT_RULE, sessionCoversHeartbeats } from '../shared/group-member-config.ts';
import { GroupSubscriber, type NewMember } from '../shared/group-subscriber.ts';
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

/**
 * Consumer groups over Redis Streams: Redis's own consumer groups track what was delivered (the pending
 * entries list) and acknowledged (XACK, only on commit); zeroloss adds partition ownership on top, with
 * a lease per partition, so one key is never read by two members at once.
 */
export class RedisStreamsSubscriber extends GroupSubscriber<RedisStreamsSubscription> {
  readonly config: Readonly<z.output<typeof redisStreamsSubscriberConfigSchema>>;
  // Delivery positions are the group's pending-entries list and acknowledgements, not offsets to seek to.
  protected override readonly withoutStartOffsets = 'Redis Streams';

  constructor(config: RedisStreamsSubscriberConfig) {
    super();
    this.config = parseConfig(redisStreamsSubscriberConfigSchema, config, 'redis streams subscriber');
  }

  protected get clientId(): string | undefined {
    return this.config.clientId;
  }

  protected newMember(member: NewMember): RedisStreamsSubscription {
    return new RedisStreamsSubscription({ ...member, settings: this.config });
  }
}
