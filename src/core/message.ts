import { RESERVED_HEADER_PREFIX } from './envelope.ts';
import { ZerolossError } from './errors.ts';
import { unstorableText } from './unstorable-text.ts';

/** What an application hands to `outbox.enqueue`. */
export interface MessageInput<P = unknown> {
  topic: string;
  /** Business key (user id, order id): one key's messages keep their order. */
  key: string;
  type: string;
  payload: P;
  /** Schema version of the payload; default 1. */
  version?: number;
  traceId?: string;
  headers?: Record<string, string>;
  /** Caller-chosen message id; default a fresh UUIDv7. A duplicate is refused (ZL_DUPLICATE_MESSAGE_ID). */
  id?: string;
}

export interface EncodedPayload {
  bytes: Buffer;
  contentType: string;
}

/** Kafka's own rule for topic names, which every transport we ship accepts. */
const TOPIC_RE = /^[a-zA-Z0-9._-]{1,249}$/;
const MAX_KEY_BYTES = 1024;
const MAX_TYPE_LENGTH = 200;
const MAX_ID_LENGTH = 128;
const MAX_HEADERS = 100;
const MAX_HEADER_NAME_BYTES = 256;
const MAX_HEADER_BYTES = 16 * 1024;

export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || !TOPIC_RE.test(topic) || topic === '.' || topic === '..') {
    throw new ZerolossError('ZL_INVALID_TOPIC', `invalid topic ${JSON.stringify(topic)}: use 1-249 of [a-zA-Z0-9._-]`, {
      details: { field: 'topic', topic },
    });
  }
  return topic;
}

function invalid(field: string, reason: string, code: 'ZL_INVALID_MESSAGE' | 'ZL_INVALID_KEY' = 'ZL_INVALID_MESSAGE'): ZerolossError {
  return new ZerolossError(code, `message ${field} ${reason}`, { details: { field } });
}

/** A non-empty string within the limit that Postgres can store, or a typed error naming the field. */
function checkText(
  value: unknown,
  field: string,
  limit: { chars?: number; bytes?: number },
  code?: 'ZL_INVALID_MESSAGE' | 'ZL_INVALID_KEY',
): void {
  const bound = limit.bytes === undefined ? `${limit.chars} characters` : `${limit.bytes} UTF-8 bytes`;
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, `must be a non-empty string of at most ${bound}`, code);
  if ((limit.chars !== undefined && value.length > limit.chars) || (limit.bytes !== undefined && Buffer.byteLength(value) > limit.bytes)) {
    throw invalid(field, `is longer than ${bound}`, code);
  }
  const unstorable = unstorableText(value);
  if (unstorable) throw invalid(field, unstorable, code);
}

/**
 * The default bound on an encoded payload: Kafka's default message.max.bytes is 1 MiB; stay under it with
 * room for headers and batch overhead. The outbox and the state-column source both default to it.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 900 * 1024;

/**
 * Validates a message and encodes its payload once. Every failure is a typed error raised before any SQL
 * runs (details.field names the field), so the caller's transaction is left exactly as it was.
 */
export function encodeMessage(input: MessageInput, maxPayloadBytes: number): EncodedPayload {
  if (input === null || typeof input !== 'object') {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'message must be an object', { details: { field: 'message' } });
  }
  validateTopic(input.topic);
  checkText(input.key, 'key', { bytes: MAX_KEY_BYTES }, 'ZL_INVALID_KEY');
  checkText(input.type, 'type', { chars: MAX_TYPE_LENGTH });
  if (input.version !== undefined && (!Number.isSafeInteger(input.version) || input.version < 1)) {
    throw invalid('version', 'must be a positive integer');
  }
  if (input.id !== undefined) checkText(input.id, 'id', { chars: MAX_ID_LENGTH });
  if (input.traceId !== undefined) checkText(input.traceId, 'traceId', { chars: MAX_ID_LENGTH });
  validateHeaders(input.headers);
  const payload = encodePayload(input.payload);
  if (payload.bytes.length > maxPayloadBytes) {
    throw new ZerolossError('ZL_PAYLOAD_TOO_LARGE', `payload is ${payload.bytes.length} bytes, over the limit of ${maxPayloadBytes}`, {
      details: { field: 'payload', bytes: payload.bytes.length, limit: maxPayloadBytes },
    });
  }
  return payload;
}

function validateHeaders(headers: unknown): void {
  if (headers === undefined) return;
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw invalid('headers', 'must be an object of string values');
  }
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw invalid('headers', `has ${entries.length} entries, over ${MAX_HEADERS}`);
  let bytes = 0;
  for (const [name, value] of entries) {
    checkText(name, 'headers', { bytes: MAX_HEADER_NAME_BYTES });
    if (name.startsWith(RESERVED_HEADER_PREFIX))
      throw invalid('headers', `name ${name} uses the reserved prefix ${RESERVED_HEADER_PREFIX}`);
    if (typeof value !== 'string') throw invalid('headers', `value of ${name} must be a string`);
    const unstorable = unstorableText(value);
    if (unstorable) throw invalid('headers', `value of ${name} ${unstorable}`);
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > MAX_HEADER_BYTES) throw invalid('headers', `total ${bytes} bytes, over ${MAX_HEADER_BYTES}`);
}

/** Bytes go out as they are; anything else as JSON. A value JSON cannot represent is refused, not mangled. */
function encodePayload(payload: unknown): EncodedPayload {
  if (payload instanceof Uint8Array) {
    return { bytes: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), contentType: 'application/octet-stream' };
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(payload, rejectLossy);
  } catch (cause) {
    throw new ZerolossError('ZL_PAYLOAD_NOT_SERIALIZABLE', `payload cannot be encoded as JSON: ${(cause as Error).message}`, {
      cause,
      details: { field: 'payload' },
    });
  }
  if (text === undefined) {
    throw new ZerolossError('ZL_PAYLOAD_NOT_SERIALIZABLE', `payload of type ${typeof payload} has no JSON form`, {
      details: { field: 'payload' },
    });
  }
  return { bytes: Buffer.from(text, 'utf8'), contentType: 'application/json' };
}

/** JSON.stringify silently drops functions and symbols and turns NaN into null; we refuse instead. */
function rejectLossy(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new TypeError(`${key || 'payload'} is a ${typeof value}`);
  }
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new TypeError(`${key || 'payload'} is ${value}`);
  }
  return value;
}
