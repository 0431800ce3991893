import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { groupMemberConfigFields, SESSION_TIMEOUT_RULE, sessionCoversHeartbeats } from '../shared/group-member-config.ts';
import { GroupSubscriber, type NewMember } from '../shared/group-subscriber.ts';
import { RabbitMqSubscription } from './rabbitmq-subscription.ts';

export const rabbitMqSubscriberConfigSchema = z
  .object({
    ...groupMemberConfigFields,
    /** amqp://user:password@host:port/vhost */
    url: z.string().min(1),
    /** Messages a partition's stream consumer may have outstanding (its credit). */
    prefetch: z.number().int().positive().default(1_000),
    /**
     * How long records that arrived wait for more before they go to the consumer together. The broker sends
     * what one socket read holds, a few dozen records, and the consumer groups the effects of what it gets
     * in one turn; 3 ms made batches larger and the benchmark consumer faster (docs/transports.md, "Offsets and acks").
     * 0 hands on every read at once.
     */
    maxBatchWaitMs: z.number().int().nonnegative().default(3),
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
  .refine(sessionCoversHeartbeats, SESSION_TIMEOUT_RULE);

export type RabbitMqSubscriberConfig = z.input<typeof rabbitMqSubscriberConfigSchema>;

/**
 * Consumer groups over RabbitMQ streams. RabbitMQ 3.10 has no consumer groups for streams on AMQP, so
 * zeroloss keeps them: a partition is owned by whoever holds its lock queue, and a group's committed
 * offset lives in a one-message quorum queue per partition, written only by `commit`.
 */
export class RabbitMqSubscriber extends GroupSubscriber<RabbitMqSubscription> {
  readonly config: Readonly<z.output<typeof rabbitMqSubscriberConfigSchema>>;
  // A partition starts from the offset its group committed to the broker; nothing else is wired in.
  protected override readonly withoutStartOffsets = 'RabbitMQ';

  constructor(config: RabbitMqSubscriberConfig) {
    super();
    this.config = parseConfig(rabbitMqSubscriberConfigSchema, config, 'rabbitmq subscriber');
  }

  protected get clientId(): string | undefined {
    return this.config.clientId;
  }

  protected newMember(member: NewMember): RabbitMqSubscription {
    return new RabbitMqSubscription({ ...member, settings: this.config });
  }
}
