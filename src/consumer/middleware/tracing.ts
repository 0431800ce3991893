import { HEADER } from '../../core/envelope.ts';
import type { MessageSpan, Tracing } from '../../ports/tracing.ts';
import type { Stage } from '../chain.ts';
import type { Delivery } from '../delivery.ts';

/** The process span of each delivery in flight, for the effect stage to run its handler in. */
const spans = new WeakMap<Delivery, MessageSpan>();

/**
 * The consumer's process span (OpenTelemetry messaging conventions): a child of the trace context stored
 * with the message at enqueue, so producer, relay and consumer show as one trace, and linked to the send
 * that delivered this copy when the record carries the relay's per-send header (SEND_TRACEPARENT_HEADER;
 * a missing or malformed one means no link). Everything inside runs
 * with it active: dead-lettering, retries (their `zeroloss.retry` events come from the retry stage's
 * reports) and the handler, whose own spans nest under it. It sits outside the dead-letter stage so a dead
 * letter is an event on the span, not an error that escaped it.
 */
export function tracingStage(tracing: Tracing): Stage<Delivery> {
  return async (d, next) => {
    if (!tracing.active()) return next(d);
    const { record } = d;
    const span = tracing.process(record.topic, record.headers, {
      'messaging.message.id': record.headers[HEADER.id],
      'messaging.destination.partition.id': String(record.partition),
      'messaging.consumer.group.name': d.groupId,
      'zeroloss.key': record.key,
      'zeroloss.offset': record.offset.toString(),
    });
    spans.set(d, span);
    try {
      await span.run(() => next(d));
    } catch (error) {
      span.end(error);
      throw error;
    } finally {
      spans.delete(d);
    }
    const outcome = d.outcome;
    if (outcome?.kind === 'dead-lettered')
      span.event('zeroloss.dead_letter', { 'error.type': outcome.code, 'zeroloss.attempts': d.attemptsMade });
    span.setAttributes({
      'zeroloss.outcome': outcome?.kind,
      'zeroloss.duplicate_via': outcome?.kind === 'duplicate' ? outcome.via : undefined,
      'zeroloss.retry_topic': outcome?.kind === 'retry-scheduled' ? outcome.topic : undefined,
    });
    span.end();
  };
}

/**
 * Runs `fn` (a handler) inside its delivery's process span. The effect stage needs this: messages that share
 * one effect transaction (group commit) run their handlers in whichever call started the transaction, so
 * the active span there is another message's.
 */
export function inDeliverySpan<T>(d: Delivery, fn: () => T): T {
  const span = spans.get(d);
  return span ? span.run(fn) : fn();
}
