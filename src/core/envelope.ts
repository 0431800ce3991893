import { ZerolossError } from './errors.ts';
import { unstorableText } from './unstorable-text.ts';

/**
 * The envelope travels as record headers next to the payload bytes, so a consumer that knows nothing of
 * zeroloss still sees the plain payload as the record value, and the payload is never wrapped or
 * re-encoded on its way through.
 */
export const HEADER = {
  id: 'zl-id',
  traceId: 'zl-trace-id',
  type: 'zl-type',
  version: 'zl-version',
  producerId: 'zl-producer-id',
  seq: 'zl-seq',
  createdAt: 'zl-created-at',
  contentType: 'zl-content-type',
  /**
   * When a state-column source built the message (its first claim), set when `createdAt` is the business
   * row's own creation time, which may be long before: the consumer judges a message's age by this, then
   * by `createdAt` (inbox-transaction.ts, refuseBeyondInboxMemory).
   */
  builtAt: 'zl-built-at',
} as const;

export const RESERVED_HEADER_PREFIX = 'zl-';

export interface Envelope {
  /** Globally unique message id: a UUIDv7 by default, a Snowflake decimal with an explicit worker id (docs/ids.md). */
  id: string;
  traceId: string;
  type: string;
  /** Schema version of the payload, a positive integer. */
  version: number;
  key: string;
  producerId: string;
  /** Gapless sequence per (producer, key); 0 when sequencing is off. */
  seq: number;
  /** ISO-8601 creation time. */
  createdAt: string;
  /** Application headers (never starting with `zl-`). */
  headers: Record<string, string>;
}

/** A record ready for a transport: encoded once, resent byte for byte. */
export interface OutgoingRecord {
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/** A record as a transport delivers it. */
export interface IncomingRecord extends OutgoingRecord {
  partition: number;
  offset: bigint;
  timestamp?: number;
}

export function envelopeHeaders(envelope: Envelope, contentType: string): Record<string, string> {
  return {
    ...envelope.headers,
    [HEADER.id]: envelope.id,
    [HEADER.traceId]: envelope.traceId,
    [HEADER.type]: envelope.type,
    [HEADER.version]: String(envelope.version),
    [HEADER.producerId]: envelope.producerId,
    [HEADER.seq]: String(envelope.seq),
    [HEADER.createdAt]: envelope.createdAt,
    [HEADER.contentType]: contentType,
  };
}

/**
 * The longest envelope field read back: an idempotency key (the inbox's primary key) is at most 512
 * characters, and a longer id could be neither applied nor indexed. The producer's own limit is lower.
 */
const MAX_FIELD_CHARS = 512;

/**
 * Reads the envelope back from record headers. Throws ZL_INVALID_MESSAGE naming the field that is missing
 * or malformed, so the consumer can dead-letter the record with a reason instead of guessing.
 */
export function readEnvelope(key: string, headers: Record<string, string>): Envelope {
  // The key, id, type and trace id end up in Postgres text (inbox, dead letters, the handler's own rows).
  const unstorableKey = unstorableText(key);
  if (unstorableKey) throw new ZerolossError('ZL_INVALID_KEY', `record key ${unstorableKey}`, { details: { field: 'key' } });
  const field = (name: string): string => {
    const value = headers[name];
    if (typeof value !== 'string' || value.length === 0) {
      throw new ZerolossError('ZL_INVALID_MESSAGE', `envelope header ${name} is missing or empty`, {
        details: { header: name },
      });
    }
    const unstorable = unstorableText(value);
    if (unstorable) throw new ZerolossError('ZL_INVALID_MESSAGE', `envelope header ${name} ${unstorable}`, { details: { header: name } });
    if (value.length > MAX_FIELD_CHARS) {
      throw new ZerolossError('ZL_INVALID_MESSAGE', `envelope header ${name} is longer than ${MAX_FIELD_CHARS} characters`, {
        details: { header: name },
      });
    }
    return value;
  };
  const int = (name: string, min: number): number => {
    const raw = field(name);
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min) {
      throw new ZerolossError(
        'ZL_INVALID_MESSAGE',
        `envelope header ${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw.slice(0, 40))}`,
        {
          details: { header: name },
        },
      );
    }
    return value;
  };
  const createdAt = field(HEADER.createdAt);
  if (Number.isNaN(Date.parse(createdAt))) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', `envelope header ${HEADER.createdAt} is not a timestamp`, {
      details: { header: HEADER.createdAt },
    });
  }
  const app: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(RESERVED_HEADER_PREFIX)) app[name] = value;
  }
  return {
    id: field(HEADER.id),
    traceId: field(headers[HEADER.traceId] ? HEADER.traceId : HEADER.id),
    type: field(HEADER.type),
    version: int(HEADER.version, 1),
    key,
    // Optional (no producer, no sequence checks); when present it is stored with the sequence marks.
    producerId: headers[HEADER.producerId] ? field(HEADER.producerId) : '',
    seq: headers[HEADER.seq] === undefined ? 0 : int(HEADER.seq, 0),
    createdAt,
    headers: app,
  };
}
