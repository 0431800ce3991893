import { z } from 'zod';
import { CONTROL_TOPIC } from '../core/control-message.ts';
import { retryPolicySchema } from './retry-policy.ts';

const DAY = 86_400_000;

/** Consumer configuration, validated once by `parseConfig`; unknown keys are rejected. */
export const consumerConfigSchema = z
  .object({
    groupId: z.string().min(1).max(255),
    topics: z.array(z.string().min(1)).min(1),
    /**
     * Keys in progress at once; one key's messages always run one at a time. With group commit (`batch`)
     * these share transactions, so this is not a connection count: 64 keys make about 4 transactions at once.
     */
    concurrency: z.number().int().min(1).max(1024).default(64),
    /**
     * Records received and not yet finished before the subscription pauses (the source's batch of 500).
     * Bounds memory and how much is redelivered after a crash. The pause is for every partition: records
     * waiting behind a key's retry count too, so one key with this many waiting stops all keys until it
     * drains (docs/consumer.md, "Retry modes").
     */
    batchSize: z.number().int().min(1).default(500),
    /**
     * Group commit: effects of different keys that are ready at the same moment share one database
     * transaction (one inbox statement, one commit); more ready than `maxMessages` make several such
     * transactions in parallel. Each effect still commits or rolls back with its inbox row; a member of a
     * failed batch runs again alone. Handlers of one batch run one after another on one connection, so
     * `maxMs` bounds how long they queue: past it, the rest run in transactions of their own, in parallel.
     * At most `maxTransactions` shared transactions run at once: messages that become ready meanwhile wait
     * and go together into the next one (consumer benchmark: a median of 3 messages per transaction without
     * the limit, 4-6 with it). `maxMessages: 1` turns it off.
     */
    batch: z
      .object({
        maxMessages: z.number().int().min(1).max(1024).default(16),
        maxMs: z.number().int().min(0).default(50),
        maxTransactions: z.number().int().min(1).max(1024).default(8),
      })
      .strict()
      .default({ maxMessages: 16, maxMs: 50, maxTransactions: 8 }),
    /** How often finished offsets are committed. */
    commitIntervalMs: z.number().int().positive().default(200),
    /** How long a revoke waits for running handlers before abandoning them; keep below the group's rebalance timeout. */
    revokeTimeoutMs: z.number().int().positive().default(15_000),
    /** How long `stop()` waits for running handlers. */
    stopTimeoutMs: z.number().int().positive().default(30_000),
    /** Bound on one offset commit during a revoke or stop. */
    commitTimeoutMs: z.number().int().positive().default(10_000),
    /** Larger payloads are dead-lettered as ZL_PAYLOAD_TOO_LARGE. */
    maxPayloadBytes: z.number().int().positive().default(1_048_576),
    /** Default retry policy; handlers override it per type. */
    retry: retryPolicySchema.default(retryPolicySchema.parse({})),
    /** Versions each type must accept (C8); registering a type without enough upcasters fails. */
    minAcceptedVersions: z.number().int().min(1).default(3),
    poison: z
      .object({
        /** Starts that never finished (the process died each time) before a record is dead-lettered as poison. */
        maxStarts: z.number().int().min(1).default(3),
      })
      .strict()
      .default({ maxStarts: 3 }),
    inbox: z
      .object({
        /** Inbox rows older than this are deleted. Must exceed `replayHorizonMs`, or a replay could apply twice. */
        retentionMs: z
          .number()
          .int()
          .positive()
          .default(14 * DAY),
        /** The oldest message that can come back (topic retention, DLQ replays): dedup must outlive it. */
        replayHorizonMs: z
          .number()
          .int()
          .positive()
          .default(7 * DAY),
        /** How often expired rows are deleted; 0 turns the cleanup off (run `cleanupInbox()` yourself). */
        cleanupIntervalMs: z.number().int().min(0).default(3_600_000),
        /** Lifetime of a key in the cache fast path. */
        cacheTtlMs: z.number().int().positive().default(DAY),
        /** Lifetime of the cache lock against concurrent copies; longer than a handler run. */
        lockTtlMs: z.number().int().positive().default(30_000),
        /** How long a copy waits for another holder's lock before letting the database decide. */
        lockWaitMs: z.number().int().min(0).default(5_000),
      })
      .strict()
      .default({
        retentionMs: 14 * DAY,
        replayHorizonMs: 7 * DAY,
        cleanupIntervalMs: 3_600_000,
        cacheTtlMs: DAY,
        lockTtlMs: 30_000,
        lockWaitMs: 5_000,
      }),
    /**
     * Where the position that survives a restart lives. 'broker': the group's committed offsets.
     * 'database' (P10): the next offset per partition is written in the same transaction as each effect and
     * the subscriber starts from it (KafkaSubscriber `startOffsets`); records are then handled one at a time
     * per partition, so that stored offset is always the contiguous one.
     */
    offsetStore: z.enum(['broker', 'database']).default('broker'),
    /** Report producer sequence gaps and duplicates (C9). */
    gapDetection: z.boolean().default(true),
    /**
     * Persistent loss detection that heals (C9) and the control channel (docs/consumer.md). When set: the
     * highest applied sequence per (topic, producer, key) is written with each effect transaction (one
     * statement per transaction), gaps are kept in sequence_gap across restarts and rebalances, a gap open
     * past `gapAlarmAfterMs` raises an alarm, and with `autoRepair` the producing side is asked to resend it
     * (again after `repairBackoffMs`, doubling, at most `maxRepairRequests` times). The producer marks on
     * the channel reveal a loss at the tail. Needs the store's `sequences`; `autoRepair` needs a publisher.
     */
    control: z
      .object({
        topic: z.string().min(1).default(CONTROL_TOPIC),
        gapAlarmAfterMs: z.number().int().positive().default(30_000),
        autoRepair: z.boolean().default(false),
        /** How often open gaps are looked at. */
        checkEveryMs: z.number().int().positive().default(5_000),
        repairBackoffMs: z.number().int().positive().default(30_000),
        maxRepairRequests: z.number().int().min(1).default(5),
        /** Read the producer marks (tail loss) from the channel, in the group `<groupId>.control`. */
        listen: z.boolean().default(true),
        /**
         * Two-way confirmation (O9, docs/operations.md): after each effect commits (or is found committed),
         * report its message id to the producer in a `receipts` message, at most `receiptBatch` ids or
         * `receiptIntervalMs` after the first. Advisory, never in the effect path; needs a publisher.
         */
        receipts: z.boolean().default(false),
        receiptBatch: z.number().int().min(1).max(10_000).default(500),
        receiptIntervalMs: z.number().int().positive().default(1_000),
      })
      .strict()
      .optional(),
    /** Copy dead letters to `<topic>.dlq` (needs a publisher); the dead_letter table is written either way. */
    deadLetterTopic: z.boolean().default(true),
    /** How often lag per partition is refreshed (when the subscription can tell); 0 turns it off. */
    lagIntervalMs: z.number().int().min(0).default(10_000),
    /** Backoff while the database (or the broker, for dead letters and retry copies) is unreachable. */
    unavailableBackoff: z
      .object({ baseMs: z.number().int().positive().default(100), maxMs: z.number().int().positive().default(5_000) })
      .strict()
      .default({ baseMs: 100, maxMs: 5_000 }),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.inbox.retentionMs <= config.inbox.replayHorizonMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['inbox', 'retentionMs'],
        message: `must be longer than inbox.replayHorizonMs (${config.inbox.replayHorizonMs}), or a late redelivery could apply twice`,
      });
    }
    if (config.topics.some((t) => /\.(retry\.\d+|dlq)$/.test(t))) {
      ctx.addIssue({ code: 'custom', path: ['topics'], message: 'list main topics only: retry and dead-letter topics are derived' });
    }
  });

export type ConsumerConfig = z.input<typeof consumerConfigSchema>;
export type ResolvedConsumerConfig = Readonly<z.output<typeof consumerConfigSchema>>;
