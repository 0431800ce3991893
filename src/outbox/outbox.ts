import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { type Envelope, envelopeHeaders } from '../core/envelope.ts';
import { type IdGenerator, snowflakeIds, uuidv7Ids } from '../core/ids.ts';
import { DEFAULT_MAX_PAYLOAD_BYTES, encodeMessage, type MessageInput } from '../core/message.ts';
import { unstorableText } from '../core/unstorable-text.ts';
import type { Clock } from '../ports/clock.ts';
import { systemClock } from '../ports/clock.ts';
import type { Store } from '../ports/backends.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import { ZerolossError } from '../core/errors.ts';
import { SendWaiters, type SentMessage, type WhenSentOptions } from './when-sent.ts';

export const outboxConfigSchema = z
  .object({
    /** Stable name of the producing application; sequences are per (producerId, key). */
    producerId: z
      .string()
      .min(1)
      .max(128)
      .refine((id) => unstorableText(id) === undefined, 'must hold no NUL character or lone surrogate (Postgres cannot store them)')
      .default('default'),
    maxPayloadBytes: z.number().int().positive().default(DEFAULT_MAX_PAYLOAD_BYTES),
    /**
     * Stamp a gapless per-(producer, key) sequence for gap detection; costs one more row lock per key.
     * Off or on, a key's messages are relayed in commit order (the key lock does not depend on it).
     */
    sequencing: z.boolean().default(true),
    /**
     * Message ids: UUIDv7 by default, unique across processes, services and databases without any
     * coordination. Snowflake ids need a worker id that no other producer writing to any outbox that
     * feeds the same consumers uses at the same time (docs/ids.md): there is no safe default for it.
     */
    ids: z
      .union(
        [
          z.literal('uuidv7'),
          z
            .object({
              workerId: z.number().int().min(0).max(1023),
              onClockBackward: z.enum(['wait', 'error']).default('wait'),
              maxBackwardMs: z.number().int().nonnegative().default(5_000),
            })
            .strict(),
        ],
        {
          error:
            "must be 'uuidv7' or Snowflake settings { workerId, onClockBackward?, maxBackwardMs? }: Snowflake ids need an explicit workerId (0..1023) that no other producer uses",
        },
      )
      .default('uuidv7'),
    /** Time source for ids and createdAt; the system clock unless a test or a fault scenario steps it. */
    clock: z
      .custom<Clock>((value) => typeof (value as Clock | null)?.now === 'function', 'must be an object with now(): number')
      .default(systemClock),
  })
  .strict();

export type OutboxConfig = z.input<typeof outboxConfigSchema>;

export interface OutboxOptions extends OutboxConfig {
  /** Where enqueue writes: a store bundle (`postgres(…)`, `pglite(…)`) or any object with its `outbox` writer. */
  store: Pick<Store, 'outbox'>;
  /**
   * Message tracing (`otelTracing()` from the OpenTelemetry adapter): an enqueue span, and the caller's
   * trace context stored with the message as W3C `traceparent` / `tracestate` headers. Default: none.
   */
  tracing?: Tracing;
}

export interface Outbox {
  /**
   * Writes the message through the caller's own transaction: it commits or rolls back with the business
   * change. Validation happens before any SQL, so a bad message throws a typed error and leaves the
   * transaction untouched.
   */
  enqueue<P>(tx: SqlExecutor, message: MessageInput<P>): Promise<Envelope>;
  /**
   * The synchronous send mode: call it after the caller's commit with the id `enqueue` returned; resolves
   * when the relay (in any process) has recorded the broker's ack, with the partition and offset it gave.
   * Rejects with ZL_SEND_TIMEOUT (retryable) after `timeoutMs` (default 30 s), which cancels nothing: the
   * row stays in the outbox and the relay still sends it; with ZL_MESSAGE_PARKED when the send failed for
   * good; with ZL_MESSAGE_NOT_FOUND when no such row was committed (the transaction rolled back).
   */
  whenSent(id: string | Pick<Envelope, 'id'>, options?: WhenSentOptions): Promise<SentMessage>;
  readonly config: Readonly<z.output<typeof outboxConfigSchema>>;
}

/**
 * The producer's half: `enqueue` writes a message through the caller's transaction. The table, its schema and
 * whether commits notify relays are the store's settings (set once, on the bundle); these are the producer's.
 */
export function createOutbox(options: OutboxOptions): Outbox {
  const { store: bundle, tracing = noTracing, ...config } = options ?? ({} as OutboxOptions);
  const writer = bundle?.outbox;
  if (typeof writer?.insert !== 'function') {
    throw new ZerolossError('ZL_INVALID_CONFIG', 'createOutbox needs a store: createOutbox({ store: postgres(…), producerId })', {
      details: { field: 'store' },
    });
  }
  const cfg = parseConfig(outboxConfigSchema, config, 'outbox');
  const store = writer;
  const nextId: IdGenerator =
    cfg.ids === 'uuidv7'
      ? uuidv7Ids({ clock: cfg.clock })
      : snowflakeIds({
          workerId: cfg.ids.workerId,
          onClockBackward: cfg.ids.onClockBackward,
          maxBackwardMs: cfg.ids.maxBackwardMs,
          clock: cfg.clock,
        });

  const readStatus = writer.sendStatus;
  const outboxName = 'name' in writer && typeof writer.name === 'string' ? writer.name : 'outbox';
  let waiters: SendWaiters | undefined;

  return {
    config: cfg,
    whenSent(id, options) {
      if (readStatus === undefined) {
        return Promise.reject(
          new ZerolossError('ZL_INVALID_CONFIG', 'whenSent needs a store that can read the outbox: createOutbox({ store: postgres(…) })', {
            details: { field: 'store' },
          }),
        );
      }
      waiters ??= new SendWaiters((ids) => readStatus.call(writer, ids), outboxName);
      return waiters.whenSent(typeof id === 'object' && id !== null ? id.id : id, options);
    },
    async enqueue(tx, message) {
      if (tx === null || typeof tx !== 'object' || typeof (tx as SqlExecutor).query !== 'function') {
        throw new ZerolossError('ZL_INVALID_CONFIG', 'enqueue needs the transaction to write through (an object with query())');
      }
      const payload = encodeMessage(message, cfg.maxPayloadBytes);
      // Snowflake ids after a backward clock step: sat out here, on a timer, so the application's other work
      // (requests, heartbeats, this transaction's own connection) goes on meanwhile; next() would spin.
      if (message.id === undefined && nextId.pendingWaitMs)
        for (let wait = nextId.pendingWaitMs(); wait > 1; wait = nextId.pendingWaitMs()) await sleep(wait);
      const id = message.id ?? nextId();
      const now = cfg.clock.now();
      const createdAt = new Date(now);
      if (Number.isNaN(createdAt.getTime())) throw new ZerolossError('ZL_INVALID_CONFIG', `the outbox clock read ${now}, not a time`);
      const envelope: Envelope = {
        id,
        traceId: message.traceId ?? id,
        type: message.type,
        version: message.version ?? 1,
        key: message.key,
        producerId: cfg.producerId,
        seq: 0,
        createdAt: createdAt.toISOString(),
        headers: { ...(message.headers ?? {}) },
      };
      // The trace context goes into the stored headers, so the relay resends it unchanged with the bytes.
      const span = tracing.active()
        ? tracing.create(message.topic, { 'messaging.message.id': id, 'zeroloss.key': message.key }, envelope.headers)
        : undefined;
      let seq: number;
      try {
        ({ seq } = await store.insert(
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
        ));
      } catch (error) {
        span?.end(error);
        throw error;
      }
      span?.end();
      envelope.seq = seq;
      return envelope;
    },
  };
}
