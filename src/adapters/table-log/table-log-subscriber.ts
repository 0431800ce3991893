import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { Database } from '../../ports/sql-executor.ts';
import type { SubscribeOptions, Subscriber } from '../../ports/transport.ts';
import { tableLogChannel, tableLogSql } from './table-log-sql.ts';
import { TableLogSubscription } from './table-log-subscription.ts';

export const tableLogSubscriberConfigSchema = z
  .object({
    /** The zeroloss schema holding the log tables (migration 3). */
    schema: z.string().default('zeroloss'),
    /** Prefix of member ids (a random suffix keeps each subscription unique); default host-pid. */
    clientId: z.string().min(1).max(100).optional(),
    /** Lease renewal and rebalance check interval. */
    heartbeatIntervalMs: z.number().int().positive().default(1_000),
    /** A member that has not renewed its lease for this long is dead; the others take its partitions. */
    sessionTimeoutMs: z.number().int().positive().default(10_000),
    /** Fetch interval when no notification arrives (the fallback for LISTEN, and the only way when listen is off). */
    pollIntervalMs: z.number().int().positive().default(1_000),
    /** Most records in one onRecords batch (one partition). */
    maxBatchRecords: z.number().int().positive().default(500),
    /** Byte budget of one batch (values): a batch stops before the record that would exceed it; a lone oversized record still goes. */
    maxBatchBytes: z.number().int().positive().default(1_048_576),
    /** Where a group starts on a partition it has never committed: the oldest retained record, or the end. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
    /** How long onRevoke may take before the partition is handed back anyway (its commits are then fenced). */
    rebalanceTimeoutMs: z.number().int().positive().default(60_000),
    /** LISTEN for publish notifications; off means polling only (e.g. behind a transaction-mode pooler). */
    listen: z.boolean().default(true),
  })
  .strict()
  .refine((c) => c.sessionTimeoutMs >= 2 * c.heartbeatIntervalMs, {
    message: 'must be at least twice heartbeatIntervalMs',
    path: ['sessionTimeoutMs'],
  });

export type TableLogSubscriberConfig = z.input<typeof tableLogSubscriberConfigSchema>;

export interface TableLogSubscriberEvents {
  /** Background trouble (database errors, a throwing callback). The subscription keeps going. */
  error: [Error];
}

const MAX_GROUP_ID = 200;

/**
 * Consumer groups over the table log. Offsets live in `log_group_offset` and are written only by
 * `commit`; members hold partitions under leases, and every claim bumps a generation that fences the
 * commits of the member it was taken from.
 */
export class TableLogSubscriber extends EventEmitter<TableLogSubscriberEvents> implements Subscriber {
  readonly config: Readonly<z.output<typeof tableLogSubscriberConfigSchema>>;
  readonly #db: Database;
  readonly #sql: ReturnType<typeof tableLogSql>;
  readonly #channel: string;
  readonly #listeners = new Set<(payload: string) => void>();
  #unlisten: Promise<() => Promise<void>> | undefined;

  constructor(db: Database, config: TableLogSubscriberConfig = {}) {
    super();
    this.config = parseConfig(tableLogSubscriberConfigSchema, config, 'table log subscriber');
    this.#db = db;
    this.#sql = tableLogSql(this.config.schema);
    this.#channel = tableLogChannel(this.config.schema);
    // Without a listener an 'error' event would throw; background errors are reported, never fatal.
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<TableLogSubscription> {
    const checked = checkSubscribeOptions(options);
    const prefix = this.config.clientId ?? `${hostname()}-${process.pid}`;
    const subscription = new TableLogSubscription({
      db: this.#db,
      sql: this.#sql,
      channel: this.#channel,
      listen: (onNotify) => this.#listen(onNotify),
      memberId: `${prefix}-${randomBytes(4).toString('hex')}`,
      settings: this.config,
      subscribe: checked,
      onError: (error) => this.emit('error', error),
    });
    await subscription.start();
    return subscription;
  }

  /**
   * One LISTEN serves every subscription of this subscriber: on Postgres each LISTEN holds a connection
   * of its own, so a process with many subscriptions would otherwise hold as many connections.
   */
  async #listen(onNotify: (payload: string) => void): Promise<() => Promise<void>> {
    this.#listeners.add(onNotify);
    if (this.#unlisten === undefined) {
      this.#unlisten = this.#db.listen(this.#channel, (payload) => {
        for (const listener of this.#listeners) listener(payload);
      });
    }
    const registration = this.#unlisten;
    try {
      await registration;
    } catch (error) {
      this.#listeners.delete(onNotify);
      if (this.#unlisten === registration) this.#unlisten = undefined;
      throw error;
    }
    return async () => {
      this.#listeners.delete(onNotify);
      if (this.#listeners.size > 0 || this.#unlisten !== registration) return;
      this.#unlisten = undefined;
      await (await registration)();
    };
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
