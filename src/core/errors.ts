/**
 * Every error zeroloss raises is a ZerolossError with a stable `code` and a `retryable` flag, so callers
 * and the retry middleware decide from data, never from message text.
 */
export type ErrorCode =
  | 'ZL_INVALID_CONFIG'
  | 'ZL_INVALID_MESSAGE'
  | 'ZL_DUPLICATE_MESSAGE_ID'
  | 'ZL_PAYLOAD_NOT_SERIALIZABLE'
  | 'ZL_PAYLOAD_TOO_LARGE'
  | 'ZL_INVALID_TOPIC'
  | 'ZL_UNKNOWN_TOPIC'
  | 'ZL_TOPIC_EXISTS'
  | 'ZL_COMMIT_FENCED'
  | 'ZL_PRODUCER_FENCED'
  | 'ZL_INVALID_OFFSET'
  | 'ZL_INVALID_KEY'
  | 'ZL_INVALID_IDENTIFIER'
  | 'ZL_UNKNOWN_TABLE'
  | 'ZL_CLOCK_MOVED_BACKWARDS'
  | 'ZL_SEND_FAILED'
  | 'ZL_SEND_REJECTED'
  | 'ZL_SEND_TIMEOUT'
  | 'ZL_MESSAGE_NOT_FOUND'
  | 'ZL_MESSAGE_PARKED'
  | 'ZL_TRANSPORT_UNAVAILABLE'
  | 'ZL_STORE_UNAVAILABLE'
  | 'ZL_STORE_CONFLICT'
  | 'ZL_STORE_TLS'
  | 'ZL_STORE_AUTH'
  | 'ZL_TRANSACTION_ROLLED_BACK'
  | 'ZL_MIGRATION_FAILED'
  | 'ZL_DURABILITY_PROFILE'
  | 'ZL_UNKNOWN_TYPE'
  | 'ZL_UNSUPPORTED_VERSION'
  | 'ZL_INVALID_PAYLOAD'
  | 'ZL_POISON_MESSAGE'
  | 'ZL_RETRIES_EXHAUSTED'
  | 'ZL_MESSAGE_ID_CONFLICT'
  | 'ZL_STALE_VERSION'
  | 'ZL_NOT_YET'
  | 'ZL_HOLD_EXPIRED'
  | 'ZL_LOCK_BUSY'
  | 'ZL_RUN_NOT_HELD'
  | 'ZL_RETRYABLE'
  | 'ZL_PERMANENT'
  | 'ZL_TOPIC_UNAVAILABLE'
  | 'ZL_DRIVER_MISSING'
  | 'ZL_KAFKA_AUTH'
  | 'ZL_KAFKA_TLS'
  | 'ZL_CONTROL_SKIPPED'
  | 'ZL_GROUP_ACTIVE'
  | 'ZL_LISTENER_FAILED'
  | 'ZL_BEYOND_INBOX_MEMORY'
  | 'ZL_UNKNOWN';

export interface ZerolossErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class ZerolossError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ZerolossErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }
}

/** Thrown by a handler (or raised internally) for a failure that may succeed on a later attempt. */
export class RetryableError extends ZerolossError {
  constructor(message: string, options: Omit<ZerolossErrorOptions, 'retryable'> = {}) {
    super('ZL_RETRYABLE', message, { ...options, retryable: true });
  }
}

/** Thrown by a handler for a failure no retry can fix: the message goes straight to dead letters. */
export class PermanentError extends ZerolossError {
  constructor(message: string, options: Omit<ZerolossErrorOptions, 'retryable'> = {}) {
    super('ZL_PERMANENT', message, { ...options, retryable: false });
  }
}

/**
 * The broker refused this client itself (credentials, certificate), not a record: no record is at fault,
 * and nothing changes until an operator fixes the configuration.
 */
export function isClientRefused(error: ZerolossError): boolean {
  return error.code === 'ZL_KAFKA_AUTH' || error.code === 'ZL_KAFKA_TLS';
}

/**
 * Turns any thrown value into a ZerolossError. Never throws itself. Unknown errors are treated as
 * retryable: a transient infrastructure fault is far more common than a deterministic one, and the
 * retry policy's attempt limit bounds the cost of guessing wrong.
 */
export function classifyError(value: unknown): ZerolossError {
  if (value instanceof ZerolossError) return value;
  try {
    if (value instanceof Error) {
      const retryable = (value as { retryable?: unknown }).retryable;
      return new ZerolossError('ZL_UNKNOWN', value.message || value.name, {
        retryable: typeof retryable === 'boolean' ? retryable : true,
        cause: value,
      });
    }
    return new ZerolossError('ZL_UNKNOWN', `non-error thrown: ${safeString(value)}`, { retryable: true, cause: value });
  } catch {
    return new ZerolossError('ZL_UNKNOWN', 'unprintable error', { retryable: true });
  }
}

/** A short, single-line description of an error, bounded so it fits in a header or a DB column. */
export function errorSummary(value: unknown, max = 500): string {
  const err = classifyError(value);
  const cause = err.cause instanceof Error && err.cause.message !== err.message ? `: ${err.cause.message}` : '';
  const text = `${err.code}: ${err.message}${cause}`.replace(/\s+/g, ' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
