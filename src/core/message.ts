import { RESERVED_HEADER_PREFIX } from './envelope.ts';
import { ZerolossError } from './errors.ts';

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
  /** Caller-chosen message id; default a fresh Snowflake id. Must be unique. */
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
const MAX_HEADER_BYTES = 16 * 1024;

export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || !TOPIC_RE.test(topic) || topic === '.' || topic === '..') {
    throw new ZerolossError('ZL_INVALID_TOPIC', `invalid topic ${JSON.stringify(topic)}: use 1-249 of [a-zA-Z0-9._-]`, {
      details: { topic },
    });
  }
  return topic;
}

/**
 * Validates a message and encodes its payload once. Every failure is a typed error raised before any SQL
 * runs, so the caller's transaction is left exactly as it was.
 */
export function encodeMessage(input: MessageInput, maxPayloadBytes: number): EncodedPayload {
  if (input === null || typeof input !== 'object') {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'message must be an object');
  }
  validateTopic(input.topic);
  if (typeof input.key !== 'string' || input.key.length === 0 || Buffer.byteLength(input.key) > MAX_KEY_BYTES) {
    throw new ZerolossError('ZL_INVALID_KEY', `message key must be a non-empty string of at most ${MAX_KEY_BYTES} bytes`, {
      details: { key: typeof input.key === 'string' ? input.key.slice(0, 64) : typeof input.key },
    });
  }
  if (typeof input.type !== 'string' || input.type.length === 0 || input.type.length > MAX_TYPE_LENGTH) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', `message type must be a non-empty string of at most ${MAX_TYPE_LENGTH} characters`);
  }
  if (input.version !== undefined && (!Number.isSafeInteger(input.version) || input.version < 1)) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'message version must be a positive integer');
  }
  if (input.id !== undefined && (typeof input.id !== 'string' || input.id.length === 0 || input.id.length > 128)) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'message id must be a non-empty string of at most 128 characters');
  }
  if (input.traceId !== undefined && (typeof input.traceId !== 'string' || input.traceId.length > 128)) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'traceId must be a string of at most 128 characters');
  }
  validateHeaders(input.headers);
  const payload = encodePayload(input.payload);
  if (payload.bytes.length > maxPayloadBytes) {
    throw new ZerolossError('ZL_PAYLOAD_TOO_LARGE', `payload is ${payload.bytes.length} bytes, over the limit of ${maxPayloadBytes}`, {
      details: { bytes: payload.bytes.length, limit: maxPayloadBytes },
    });
  }
  return payload;
}

function validateHeaders(headers: unknown): void {
  if (headers === undefined) return;
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', 'headers must be an object of string values');
  }
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(RESERVED_HEADER_PREFIX)) {
      throw new ZerolossError('ZL_INVALID_MESSAGE', `header ${name} uses the reserved prefix ${RESERVED_HEADER_PREFIX}`);
    }
    if (typeof value !== 'string') {
      throw new ZerolossError('ZL_INVALID_MESSAGE', `header ${name} must be a string`);
    }
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > MAX_HEADER_BYTES) {
    throw new ZerolossError('ZL_INVALID_MESSAGE', `headers total ${bytes} bytes, over ${MAX_HEADER_BYTES}`);
  }
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
    });
  }
  if (text === undefined) {
    throw new ZerolossError('ZL_PAYLOAD_NOT_SERIALIZABLE', `payload of type ${typeof payload} has no JSON form`);
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
