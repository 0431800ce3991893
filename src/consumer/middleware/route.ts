import { ZerolossError } from '../../core/errors.ts';
import type { Stage } from '../chain.ts';
import { type DecodedDelivery, type RoutedDelivery, setRouted } from '../delivery.ts';
import { contentDigest } from '../content-digest.ts';
import { type ConsumedMessage, type HandlerRegistry, checkIdempotencyKey, routeFor, upcast } from '../handler-registry.ts';

/**
 * Finds the handler for the message type (C5), upcasts the payload to the handler's version (C8),
 * validates it against the type's schema, and computes the idempotency key. Every failure here is
 * permanent: an unknown type, an unsupported version or a payload of the wrong shape will not improve.
 */
export function routeStage(registry: HandlerRegistry): Stage<DecodedDelivery, RoutedDelivery> {
  return async (d, next) => {
    const { envelope } = d.decoded;
    const route = routeFor(registry, envelope.type);
    let payload = upcast(route, envelope.version, d.decoded.payload);
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
    const message: ConsumedMessage = {
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
      key = route.idempotencyKey(message);
    } catch (cause) {
      throw new ZerolossError('ZL_INVALID_PAYLOAD', `idempotency key of ${route.type} cannot be computed: ${describe(cause)}`, { cause });
    }
    const idempotencyKey = checkIdempotencyKey(route.type, key);
    // The bytes as produced, before any upcast: a replay or retry copy carries the same ones.
    const digest = route.keyIsMessageId
      ? contentDigest({ id: envelope.id, type: envelope.type, key: envelope.key, version: envelope.version, payload: d.record.value })
      : undefined;
    setRouted(d, { route, message, idempotencyKey, contentDigest: digest });
    await next(d);
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
