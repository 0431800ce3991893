import { classifyError, errorSummary, type ZerolossError } from '../../core/errors.ts';
import type { DeadLetterInput, DeadLetterWriter } from '../../ports/dead-letter-store.ts';
import type { Publisher } from '../../ports/transport.ts';
import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import { AbandonedError, DLQ_HEADER, type Delivery, type Middleware, deadLetterTopic, originalHeaders } from '../delivery.ts';
import { publishUntilAcked, type StoreRetryOptions, untilAvailable } from '../store-retry.ts';

/**
 * Catches whatever the inner stages gave up on (bad input, unknown type or version, a permanent handler
 * error, retries exhausted, poison) and makes it a dead letter (C7): a row in the dead_letter table, then
 * the original bytes and headers on `<topic>.dlq` with the failure headers. Only after both are durable is
 * the record finished, so the other messages keep flowing and nothing is lost. A redelivery of a message
 * that is already dead (crash before the offset commit, or a duplicate copy) adds nothing.
 */
export function deadLetterMiddleware(deps: {
  writer: DeadLetterWriter;
  publisher: Publisher | undefined;
  topicCopy: boolean;
  reporter: ConsumerReporter;
  metrics: ConsumerMetrics;
  unavailable: StoreRetryOptions;
}): Middleware {
  return async (d, next) => {
    try {
      await next();
    } catch (thrown) {
      // Revoked or stopping: leave it unfinished for the next owner rather than judge it now.
      if (thrown instanceof AbandonedError || d.signal.aborted) throw thrown instanceof AbandonedError ? thrown : new AbandonedError();
      const error = classifyError(thrown);
      const input = deadLetterInput(d, error);
      const { id, inserted, published } = await untilAvailable(d, 'recording a dead letter', { ...deps.unavailable, anyError: true }, () =>
        deps.writer.record(input),
      );
      if (!published && deps.topicCopy && deps.publisher) {
        const headers = dlqHeaders(d, input, id);
        await publishUntilAcked(
          d,
          deps.publisher,
          { topic: deadLetterTopic(input.topic), key: d.record.key, value: d.record.value, headers },
          `sending dead letter ${id}`,
          deps.unavailable,
        );
        await untilAvailable(d, 'marking a dead letter published', { ...deps.unavailable, anyError: true }, () =>
          deps.writer.markPublished(id),
        );
      }
      d.outcome = 'dead-lettered';
      if (inserted) deps.metrics.deadLettered.inc({ group: d.groupId, code: input.errorCode });
      deps.reporter.emit('dead-letter', {
        id,
        groupId: d.groupId,
        topic: input.topic,
        partition: input.partition,
        offset: input.offset,
        messageId: input.messageId,
        type: input.type,
        errorCode: input.errorCode,
        reason: input.error,
        attempts: input.attempts,
        recorded: inserted,
      });
    }
  };
}

function deadLetterInput(d: Delivery, error: ZerolossError): DeadLetterInput {
  const now = new Date();
  const started = error.details.started;
  const attempts = typeof started === 'number' ? started : d.attemptsMade;
  const reason =
    d.gaveUp === 'exhausted'
      ? `gave up after ${attempts} attempts (${d.route?.retry.maxRetries} retries): ${errorSummary(error)}`
      : errorSummary(error);
  return {
    groupId: d.groupId,
    // Duplicate copies of one bad message share its id; an unreadable record is known by its position only.
    idempotencyKey: d.idempotencyKey ?? (d.envelope ? d.envelope.id : `offset:${d.origin.topic}/${d.origin.partition}/${d.origin.offset}`),
    messageId: d.envelope?.id ?? d.record.headers['zl-id'],
    topic: d.origin.topic,
    partition: d.origin.partition,
    offset: d.origin.offset,
    key: d.record.key,
    type: d.envelope?.type ?? d.record.headers['zl-type'],
    headers: originalHeaders(d.record.headers),
    payload: d.record.value ?? Buffer.alloc(0),
    errorCode: error.code,
    error: reason,
    stack: stackSummary(error),
    attempts,
    firstFailureAt: d.firstFailureAt ?? now,
    lastFailureAt: d.lastFailureAt ?? now,
  };
}

function dlqHeaders(d: Delivery, input: DeadLetterInput, id: string): Record<string, string> {
  return {
    ...input.headers,
    [DLQ_HEADER.error]: input.error,
    [DLQ_HEADER.errorCode]: input.errorCode,
    [DLQ_HEADER.stack]: input.stack ?? '',
    [DLQ_HEADER.originalTopic]: input.topic,
    [DLQ_HEADER.originalPartition]: String(input.partition),
    [DLQ_HEADER.originalOffset]: input.offset.toString(),
    [DLQ_HEADER.attempts]: String(input.attempts),
    [DLQ_HEADER.firstFailureAt]: input.firstFailureAt.toISOString(),
    [DLQ_HEADER.lastFailureAt]: input.lastFailureAt.toISOString(),
    [DLQ_HEADER.group]: d.groupId,
    [DLQ_HEADER.id]: id,
  };
}

/** The top frames of the original error (a wrapped handler error keeps its own stack as `cause`). */
function stackSummary(error: ZerolossError): string | undefined {
  const source = error.cause instanceof Error && error.cause.stack ? error.cause : error;
  if (!source.stack) return undefined;
  const lines = source.stack.split('\n').map((l) => l.trim());
  const frames = lines.filter((l) => l.startsWith('at ')).slice(0, 6);
  return [lines[0], ...frames].join('\n').slice(0, 2000);
}
