import type { Envelope, IncomingRecord } from '../core/envelope.ts';
import type { Claim } from '../ports/inbox-store.ts';
import type { SqlExecutor } from '../ports/sql-executor.ts';
import { SEND_TRACEPARENT_HEADER } from '../ports/tracing.ts';
import type { ConsumedMessage, RegisteredHandler } from './handler-registry.ts';
import type { LaneControl } from './key-lanes.ts';
import { isRetryTopic, RETRY_HEADER } from '../core/retry-topics.ts';

// The retry and dead-letter format moved to core (the Kafka transactional processor, an adapter, uses it too).
export { DLQ_HEADER, deadLetterTopic, isRetryTopic, RETRY_HEADER, retryTopic } from '../core/retry-topics.ts';

/**
 * Bounds, in UTF-8 bytes, of the failure text a copy carries in its headers (a long stack or error message
 * is cut): with topic and group names at their limits, everything a `.dlq` or retry copy adds to the
 * original record stays under 5 KiB, which `zeroloss doctor` asks those topics to leave room for.
 */
export const FAILURE_HEADER_BYTES = { error: 1_024, stack: 2_048, retryError: 512 } as const;

/** Cuts `text` to at most `maxBytes` of UTF-8, at a character boundary, marking the cut with '…'. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  let end = Math.max(0, maxBytes - 3);
  // Never cut inside a character: back up over continuation bytes (10xxxxxx).
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return `${bytes.subarray(0, end).toString('utf8')}…`;
}

/**
 * How a record finished, set by the stage that finished it. A record whose chain ended without one (or
 * threw) is not finished: its offset is not committed past.
 */
export type Outcome =
  /** The effect transaction committed with the handler's writes (`committedAt`, epoch ms). */
  | { readonly kind: 'processed'; readonly committedAt: number }
  /**
   * Nothing ran: applied before (the cache remembered it, or the inbox row was already there), or parked
   * behind its own open dead letter (a resent copy or a redelivery of a dead-lettered message), where only
   * a replay applies it.
   */
  | { readonly kind: 'duplicate'; readonly via: 'cache' | 'inbox' | 'dead-letter' }
  /** Recorded as a dead letter (the dead_letter row, and the `.dlq` copy where there is one). */
  | { readonly kind: 'dead-lettered'; readonly code: string }
  /** Handed to `topic` (`<topic>.retry.<n>`), which now carries it. */
  | { readonly kind: 'retry-scheduled'; readonly topic: string }
  /** Set aside while a degrade switch is on: `topic` (the type's standby topic) now carries it, unapplied. */
  | { readonly kind: 'deferred'; readonly topic: string };

/** What the decode stage learnt from the record. */
export interface Decoded {
  readonly envelope: Envelope;
  /** JSON payload, or the bytes for `application/octet-stream`; not upcast yet. */
  readonly payload: unknown;
}

/** What the route stage learnt: the handler, the message as it will see it, and its inbox key. */
export interface Routed {
  readonly route: RegisteredHandler;
  /** Payload upcast to the handler's version and validated. */
  readonly message: ConsumedMessage;
  readonly idempotencyKey: string;
  /** Content digest (content-digest.ts), when the idempotency key is the message id. */
  readonly contentDigest: string | undefined;
}

/**
 * One delivered record on its way through the consumer chain (consumer-chain.ts). What a stage learns is
 * set once, by that stage, as a typed value (`decoded`, `routed`); stages after it take `DecodedDelivery`
 * or `RoutedDelivery`, whose types say the value is there. Outer stages (dead letter, metrics) see the
 * values as optional: a record can fail before they were learnt.
 */
export interface Delivery {
  readonly record: IncomingRecord;
  readonly groupId: string;
  /** Aborted when the partition is revoked or the consumer stops: waits end and the record is abandoned. */
  readonly signal: AbortSignal;
  readonly lane: LaneControl;
  /** The partition epoch the record was delivered in (offset-tracker.ts): its progress counts only in it. */
  readonly epoch: number;
  /** Where the message was first consumed: the record itself, or the origin its retry headers name. */
  readonly origin: { topic: string; partition: number; offset: bigint };
  /** Attempt number of the next handler run, 1-based, carried across retry topics by header. */
  attempt: number;
  /** Handler runs so far, earlier retry copies included. */
  attemptsMade: number;
  /** Why the retry stage gave up, when it did. */
  gaveUp?: 'permanent' | 'exhausted';
  firstFailureAt: Date | undefined;
  lastFailureAt: Date | undefined;
  /** Set by the decode stage. */
  decoded?: Decoded;
  /** Set by the route stage. */
  routed?: Routed;
  /**
   * A write the offset stage needs in the effect transaction (the position, with database offsets); the
   * effect stage runs it after the handler, with the inbox's answer for this record.
   */
  withEffect?: (tx: SqlExecutor, claim: Claim) => Promise<void>;
  /**
   * Set by the poison guard while an attempt runs: takes back the attempt's start mark, the attempt having
   * ended with `error` and not by a crash. Once: a later call gets the first call's promise, which never
   * rejects. The effect stage calls it the moment it knows the attempt is over, before the failure goes
   * back up the chain: on its way, a record that gave its concurrency slot back waits for one again, and
   * on a busy consumer that takes a while during which it is only waiting (poison-guard.ts).
   */
  endAttempt?: (error: unknown) => Promise<void>;
  /** Set by the stage that finished the record. */
  outcome?: Outcome;
}

export type DecodedDelivery = Delivery & { readonly decoded: Decoded };
export type RoutedDelivery = DecodedDelivery & { readonly routed: Routed };

/** Records what the decode stage learnt; from here on the delivery is a DecodedDelivery. */
export function setDecoded(d: Delivery, decoded: Decoded): asserts d is DecodedDelivery {
  d.decoded = decoded;
}

/** Records what the route stage learnt; from here on the delivery is a RoutedDelivery. */
export function setRouted(d: DecodedDelivery, routed: Routed): asserts d is RoutedDelivery {
  d.routed = routed;
}

/**
 * Thrown when a record's processing stops because its partition is being taken away or the consumer is
 * stopping. The record is not finished, so its offset is not committed and the next owner gets it again.
 */
export class AbandonedError extends Error {
  constructor() {
    super('processing abandoned (partition revoked or consumer stopping)');
    this.name = 'AbandonedError';
  }
}

/** Builds a delivery for a record, reading the attempt state a retry copy carries. */
export function newDelivery(
  record: IncomingRecord,
  context: { groupId: string; signal: AbortSignal; lane: LaneControl; epoch: number },
): Delivery {
  const h = record.headers;
  const retried = isRetryTopic(record.topic) && h[RETRY_HEADER.originalTopic] !== undefined;
  const header = retried ? Number(h[RETRY_HEADER.attempt]) : 1;
  const attempt = Number.isSafeInteger(header) && header >= 1 ? header : 1;
  const offset = retried ? safeBigInt(h[RETRY_HEADER.originalOffset]) : undefined;
  return {
    record,
    ...context,
    origin:
      retried && offset !== undefined
        ? { topic: h[RETRY_HEADER.originalTopic] as string, partition: Number(h[RETRY_HEADER.originalPartition]) || 0, offset }
        : { topic: record.topic, partition: record.partition, offset: record.offset },
    attempt,
    attemptsMade: attempt - 1,
    firstFailureAt: retried ? safeDate(h[RETRY_HEADER.firstFailureAt]) : undefined,
    lastFailureAt: retried ? safeDate(h[RETRY_HEADER.lastFailureAt]) : undefined,
  };
}

/**
 * The original headers of a record, without what retry copies added and without the relay's per-send
 * header: a retry copy or a dead letter is not that send, so its process span must not link to it.
 */
export function originalHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  const added = new Set<string>([...Object.values(RETRY_HEADER), SEND_TRACEPARENT_HEADER]);
  for (const [name, value] of Object.entries(headers)) if (!added.has(name)) out[name] = value;
  return out;
}

function safeBigInt(value: string | undefined): bigint | undefined {
  return value !== undefined && /^\d{1,19}$/.test(value) ? BigInt(value) : undefined;
}

function safeDate(value: string | undefined): Date | undefined {
  const ms = value === undefined ? Number.NaN : Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}
