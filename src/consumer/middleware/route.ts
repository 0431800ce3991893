import { ZerolossError } from '../../core/errors.ts';
import type { Envelope } from '../../core/envelope.ts';
import type { Middleware } from '../delivery.ts';
import { contentDigest } from '../content-digest.ts';
import { type HandlerRegistry, checkIdempotencyKey, routeFor, upcast } from '../handler-registry.ts';

/**
 * Finds the handler for the message type (C5), upcasts the payload to the handler's version (C8),
 * validates it against the type's schema, and computes the idempotency key. Every failure here is
 * permanent: an unknown type, an unsupported version or a payload of the wrong shape will not improve.
 */
export function routeMiddleware(registry: HandlerRegistry): Middleware {
  return async (d, next) => {
    const envelope = d.envelope as Envelope;
    const route = routeFor(registry, envelope.type);
    let payload = upcast(route, envelope.version, d.payload);
    if (route.schema) {
      try {
        payload = route.schema.parse(payload);
      } catch (cause) {
        throw new ZerolossError(
          'ZL_INVALID_PAYLOAD',
          `payload does not match the schema of ${route.type} v${route.version}: ${describe(cause)}`,
          {
            cause,
          },
        );
      }
    }
    d.route = route;
    d.payload = payload;
    d.message = {
      id: envelope.id,
      type: envelope.type,
      version: envelope.version,
      key: envelope.key,
      payload,
      headers: envelope.headers,
      traceId: envelope.traceId,
      producerId: envelope.producerId,
      seq: envelope.seq,
      createdAt: envelope.createdAt,
      topic: d.origin.topic,
      partition: d.origin.partition,
      offset: d.origin.offset,
    };
    let key: unknown;
    try {
      key = route.idempotencyKey(d.message);
    } catch (cause) {
      throw new ZerolossError('ZL_INVALID_PAYLOAD', `idempotency key of ${route.type} cannot be computed: ${describe(cause)}`, { cause });
    }
    d.idempotencyKey = checkIdempotencyKey(route.type, key);
    if (route.keyIsMessageId) {
      // The bytes as produced, before any upcast: a replay or retry copy carries the same ones.
      d.contentDigest = contentDigest({
        id: envelope.id,
        type: envelope.type,
        key: envelope.key,
        version: envelope.version,
        payload: d.record.value,
      });
    }
    await next();
  };
}

/** A validation error as one bounded line (zod issues are listed by path). */
function describe(error: unknown): string {
  const issues = (error as { issues?: Array<{ path?: unknown[]; message?: string }> })?.issues;
  const text = Array.isArray(issues)
    ? issues.map((i) => `${(i.path ?? []).join('.') || '(root)'}: ${i.message}`).join('; ')
    : error instanceof Error
      ? error.message
      : String(error);
  return text.length > 300 ? `${text.slice(0, 299)}…` : text;
}
