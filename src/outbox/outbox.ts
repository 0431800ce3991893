import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { type Envelope, envelopeHeaders } from '../core/envelope.ts';
import { type IdGenerator, randomWorkerId, snowflakeIds, uuidv7 } from '../core/ids.ts';
import { encodeMessage, type MessageInput } from '../core/message.ts';
import { PostgresOutboxStore } from '../adapters/postgres/postgres-outbox-store.ts';
import type { OutboxWriter } from '../ports/outbox-store.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';
import { ZerolossError } from '../core/errors.ts';
import { quoteIdent } from '../core/identifier.ts';

/** Kafka's default message.max.bytes is 1 MiB; stay under it with room for headers and batch overhead. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 900 * 1024;

export const outboxConfigSchema = z
  .object({
    schema: z.string().default('zeroloss'),
    /** Stable name of the producing application; sequences are per (producerId, key). */
    producerId: z.string().min(1).max(128).default('default'),
    maxPayloadBytes: z.number().int().positive().default(DEFAULT_MAX_PAYLOAD_BYTES),
    /** Stamp a gapless per-(producer, key) sequence for gap detection; costs one row lock per key. */
    sequencing: z.boolean().default(true),
    /**
     * Wake listening relays at commit with pg_notify; default false (relays poll every `pollIntervalMs`).
     * Costs throughput: Postgres serialises the commits of notifying transactions behind one lock.
     */
    notify: z.boolean().default(false),
    /**
     * Run the enqueue statement as a named prepared statement on node-postgres connections (planned once
     * per connection). Turn off behind a pooler that does not keep prepared statements (PgBouncer in
     * transaction mode before 1.21).
     */
    preparedStatements: z.boolean().default(true),
    ids: z
      .union([
        z.literal('uuidv7'),
        z
          .object({
            workerId: z.number().int().min(0).max(1023).optional(),
            onClockBackward: z.enum(['wait', 'error']).default('wait'),
            maxBackwardMs: z.number().int().nonnegative().default(5_000),
          })
          .strict(),
      ])
      .default({ onClockBackward: 'wait', maxBackwardMs: 5_000 }),
  })
  .strict();

export type OutboxConfig = z.input<typeof outboxConfigSchema>;

export interface Outbox {
  /**
   * Writes the message through the caller's own transaction: it commits or rolls back with the business
   * change. Validation happens before any SQL, so a bad message throws a typed error and leaves the
   * transaction untouched.
   */
  enqueue<P>(tx: SqlExecutor, message: MessageInput<P>): Promise<Envelope>;
  readonly config: Readonly<z.output<typeof outboxConfigSchema>>;
}

export function createOutbox(config: OutboxConfig = {}, writer?: OutboxWriter): Outbox {
  const cfg = parseConfig(outboxConfigSchema, config, 'outbox');
  const quotedSchema = quoteIdent(cfg.schema, 'schema');
  const store =
    writer ?? new PostgresOutboxStore(undefined, { schema: cfg.schema, notify: cfg.notify, preparedStatements: cfg.preparedStatements });
  const nextId: IdGenerator =
    cfg.ids === 'uuidv7'
      ? () => uuidv7()
      : snowflakeIds({
          workerId: cfg.ids.workerId ?? randomWorkerId(),
          onClockBackward: cfg.ids.onClockBackward,
          maxBackwardMs: cfg.ids.maxBackwardMs,
        });

  // Checked once, before the first insert: a missing table would otherwise abort the caller's transaction.
  let tableChecked = false;

  return {
    config: cfg,
    async enqueue(tx, message) {
      if (tx === null || typeof tx !== 'object' || typeof (tx as SqlExecutor).query !== 'function') {
        throw new ZerolossError('ZL_INVALID_CONFIG', 'enqueue needs the transaction to write through (an object with query())');
      }
      const payload = encodeMessage(message, cfg.maxPayloadBytes);
      if (!tableChecked) {
        const { rows } = await tx.query<{ t: string | null }>('select to_regclass($1)::text as t', [`${quotedSchema}.outbox`]);
        if (!rows[0]?.t) {
          throw new ZerolossError('ZL_UNKNOWN_TABLE', `table ${cfg.schema}.outbox does not exist: run \`npx zeroloss migrate\``, {
            details: { schema: cfg.schema },
          });
        }
        tableChecked = true;
      }
      const id = message.id ?? nextId();
      const envelope: Envelope = {
        id,
        traceId: message.traceId ?? id,
        type: message.type,
        version: message.version ?? 1,
        key: message.key,
        producerId: cfg.producerId,
        seq: 0,
        createdAt: new Date().toISOString(),
        headers: { ...(message.headers ?? {}) },
      };
      const { seq } = await store.insert(
        tx,
        {
          messageId: id,
          topic: message.topic,
          key: message.key,
          type: message.type,
          traceId: envelope.traceId,
          producerId: cfg.producerId,
          headers: envelopeHeaders(envelope, payload.contentType),
          payload: payload.bytes,
        },
        cfg.sequencing,
      );
      envelope.seq = seq;
      return envelope;
    },
  };
}
