import { z } from 'zod';
import { parseConfig } from '../../core/config.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { groupMemberConfigFields, SESSION_TIMEOUT_RULE, sessionCoversHeartbeats } from '../shared/group-member-config.ts';
import { GroupSubscriber, type NewMember } from '../shared/group-subscriber.ts';
import { tableLogChannel, tableLogSql } from './table-log-sql.ts';
import { TableLogSubscription } from './table-log-subscription.ts';

export const tableLogSubscriberConfigSchema = z
  .object({
    ...groupMemberConfigFields,
    /** The zeroloss schema holding the log tables (migration 3). */
    schema: z.string().default('zeroloss'),
    /** Fetch interval when no notification arrives (the fallback for LISTEN, and the only way when listen is off). */
    pollIntervalMs: z.number().int().positive().default(1_000),
    /** Byte budget of one batch (values): a batch stops before the record that would exceed it; a lone oversized record still goes. */
    maxBatchBytes: z.number().int().positive().default(1_048_576),
    /** LISTEN for publish notifications; off means polling only (e.g. behind a transaction-mode pooler). */
    listen: z.boolean().default(true),
  })
  .strict()
  .refine(sessionCoversHeartbeats, SESSION_TIMEOUT_RULE);

export type TableLogSubscriberConfig = z.input<typeof tableLogSubscriberConfigSchema>;

/**
 * Consumer groups over the table log. Offsets live in `log_group_offset` and are written only by
 * `commit`; members hold partitions under leases, and every claim bumps a generation that fences the
 * commits of the member it was taken from.
 */
export class TableLogSubscriber extends GroupSubscriber<TableLogSubscription> {
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
  }

  protected get clientId(): string | undefined {
    return this.config.clientId;
  }

  protected newMember(member: NewMember): TableLogSubscription {
    return new TableLogSubscription({
      ...member,
      db: this.#db,
      sql: this.#sql,
      channel: this.#channel,
      listen: (onNotify) => this.#listen(onNotify),
      settings: this.config,
    });
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
