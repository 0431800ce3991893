import type { SqlExecutor } from '../ports/sql-executor.ts';
import { ZerolossError } from '../core/errors.ts';
import { type HoldPolicy, type HoldPolicyInput, resolveHoldPolicy } from './guards/hold-policy.ts';
import { type RetryPolicy, type RetryPolicyInput, resolveRetryPolicy } from './retry-policy.ts';

/** A message as a handler sees it: envelope fields plus the payload, upcast to the handler's version. */
export interface ConsumedMessage<P = unknown> {
  id: string;
  type: string;
  /** The version the message was produced with; `payload` has already been upcast to the current one. */
  version: number;
  key: string;
  payload: P;
  /** Application headers (no `zl-` headers). */
  headers: Record<string, string>;
  traceId: string;
  producerId: string;
  seq: number;
  createdAt: string;
  topic: string;
  partition: number;
  offset: bigint;
}

export interface HandlerContext {
  /** The transaction zeroloss opened for this message; the inbox row is already in it. Write the effect here. */
  tx: SqlExecutor;
  /** 1-based attempt number (retries included, across retry topics). */
  attempt: number;
  groupId: string;
  idempotencyKey: string;
  /** Aborted when the partition is being taken away or the consumer stops; long work may give up on it. */
  signal: AbortSignal;
}

export type Handler<P = unknown> = (message: ConsumedMessage<P>, ctx: HandlerContext) => Promise<void>;

/** Turns a payload of version n into the shape of version n + 1. */
// biome-ignore lint/suspicious/noExplicitAny: upcasters take whatever an older producer wrote
export type Upcaster = (payload: any) => unknown;

export interface HandlerOptions<P = unknown> {
  /** Current schema version of this type; default 1. */
  version?: number;
  /** Keyed by source version: `upcasters[1]` turns a version-1 payload into version 2. */
  upcasters?: Record<number, Upcaster>;
  /** Validates the (upcast) payload, e.g. a zod schema. A throw dead-letters the message as ZL_INVALID_PAYLOAD. */
  schema?: { parse(input: unknown): P };
  /** Dedup key; default the message id. E.g. `(m) => \`${m.payload.orderId}:${m.payload.status}\``. */
  idempotencyKey?: (message: ConsumedMessage<P>) => string;
  /** Overrides the consumer's default retry policy for this type. */
  retry?: RetryPolicyInput;
  /** How long a message whose handler throws NotYetError is held for its predecessor (middleware/hold.ts). */
  hold?: HoldPolicyInput;
}

export interface RegisteredHandler {
  type: string;
  handler: Handler;
  version: number;
  /** Oldest version that can be upcast to `version`. */
  oldestVersion: number;
  upcasters: ReadonlyMap<number, Upcaster>;
  schema: { parse(input: unknown): unknown } | undefined;
  idempotencyKey: (message: ConsumedMessage) => string;
  /**
   * True when the key is the message id (no `idempotencyKey` option): the inbox then also compares content
   * digests, so another message under a known id is a conflict, not a duplicate. A handler-chosen key
   * legitimately spans several messages, so their contents are not compared.
   */
  keyIsMessageId: boolean;
  retry: RetryPolicy;
  hold: HoldPolicy;
}

const MAX_KEY_LENGTH = 512;

/** Dispatch by type (C5): a new type is one registration. */
export class HandlerRegistry {
  readonly #handlers = new Map<string, RegisteredHandler>();
  readonly #defaultRetry: RetryPolicy;
  /** How many versions each type must accept (C8: at least the latest 3). */
  readonly #minVersions: number;

  constructor(defaultRetry: RetryPolicy, minVersions: number) {
    this.#defaultRetry = defaultRetry;
    this.#minVersions = minVersions;
  }

  register<P>(type: string, handler: Handler<P>, options: HandlerOptions<P> = {}): RegisteredHandler {
    if (typeof type !== 'string' || type.length === 0 || type.length > 200) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'handler type must be a non-empty string of at most 200 characters');
    }
    if (typeof handler !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', `handler for ${type} must be a function`);
    if (this.#handlers.has(type)) throw new ZerolossError('ZL_INVALID_CONFIG', `a handler for type ${type} is already registered`);
    const version = options.version ?? 1;
    if (!Number.isSafeInteger(version) || version < 1)
      throw new ZerolossError('ZL_INVALID_CONFIG', `version of ${type} must be a positive integer`);
    const upcasters = new Map<number, Upcaster>();
    for (const [from, fn] of Object.entries(options.upcasters ?? {})) {
      const n = Number(from);
      if (!Number.isSafeInteger(n) || n < 1 || n >= version || typeof fn !== 'function') {
        throw new ZerolossError(
          'ZL_INVALID_CONFIG',
          `upcaster ${from} of ${type}: keys must be versions 1..${version - 1} mapping to functions`,
        );
      }
      upcasters.set(n, fn);
    }
    let oldestVersion = version;
    while (upcasters.has(oldestVersion - 1)) oldestVersion--;
    const required = Math.max(1, version - this.#minVersions + 1);
    if (oldestVersion > required) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `type ${type} v${version} must accept versions ${required}..${version}: add upcasters for ${range(required, oldestVersion - 1)}`,
      );
    }
    const entry: RegisteredHandler = {
      type,
      handler: handler as Handler,
      version,
      oldestVersion,
      upcasters,
      schema: options.schema,
      idempotencyKey: (options.idempotencyKey as ((m: ConsumedMessage) => string) | undefined) ?? ((m) => m.id),
      keyIsMessageId: options.idempotencyKey === undefined,
      retry: resolveRetryPolicy(this.#defaultRetry, options.retry),
      hold: resolveHoldPolicy(type, options.hold),
    };
    this.#handlers.set(type, entry);
    return entry;
  }

  get(type: string): RegisteredHandler | undefined {
    return this.#handlers.get(type);
  }

  get types(): string[] {
    return [...this.#handlers.keys()];
  }

  get entries(): RegisteredHandler[] {
    return [...this.#handlers.values()];
  }
}

/** Finds the handler for a type or throws the permanent error that dead-letters the message. */
export function routeFor(registry: HandlerRegistry, type: string): RegisteredHandler {
  const entry = registry.get(type);
  if (entry) return entry;
  const known = registry.types;
  throw new ZerolossError(
    'ZL_UNKNOWN_TYPE',
    `no handler registered for type ${JSON.stringify(type.slice(0, 200))} (known: ${known.slice(0, 20).join(', ') || 'none'})`,
    { details: { type } },
  );
}

/** Brings a payload of `version` to the handler's current version, or throws ZL_UNSUPPORTED_VERSION. */
export function upcast(entry: RegisteredHandler, version: number, payload: unknown): unknown {
  if (version > entry.version) {
    throw new ZerolossError(
      'ZL_UNSUPPORTED_VERSION',
      `type ${entry.type} version ${version} is newer than this consumer's version ${entry.version}`,
      { details: { type: entry.type, version, current: entry.version } },
    );
  }
  if (version < entry.oldestVersion) {
    throw new ZerolossError(
      'ZL_UNSUPPORTED_VERSION',
      `type ${entry.type} version ${version} is older than the oldest accepted version ${entry.oldestVersion}`,
      { details: { type: entry.type, version, oldest: entry.oldestVersion } },
    );
  }
  let value = payload;
  for (let v = version; v < entry.version; v++) {
    try {
      value = (entry.upcasters.get(v) as Upcaster)(value);
    } catch (cause) {
      throw new ZerolossError(
        'ZL_INVALID_PAYLOAD',
        `upcasting ${entry.type} from v${v} to v${v + 1} failed: ${(cause as Error)?.message}`,
        {
          cause,
        },
      );
    }
  }
  return value;
}

/** Validates a computed idempotency key: it is a primary-key column, so it must be a short non-empty string. */
export function checkIdempotencyKey(type: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new ZerolossError(
      'ZL_INVALID_PAYLOAD',
      `idempotency key of type ${type} must be a non-empty string of at most ${MAX_KEY_LENGTH} characters, got ${typeof key === 'string' ? `${key.length} characters` : typeof key}`,
    );
  }
  return key;
}

function range(from: number, to: number): string {
  return from === to ? `v${from}` : `v${from}..v${to}`;
}
