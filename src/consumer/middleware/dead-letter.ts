import { classifyError, errorSummary, ZerolossError } from '../../core/errors.ts';
import type { DeadLetterInput, DeadLetterWriter } from '../../ports/dead-letter-store.ts';
import type { Publisher } from '../../ports/transport.ts';
import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import type { Stage } from '../chain.ts';
import {
  AbandonedError,
  DLQ_HEADER,
  type Delivery,
  FAILURE_HEADER_BYTES,
  deadLetterTopic,
  originalHeaders,
  truncateUtf8,
} from '../delivery.ts';
import { publishUntilAcked, type StoreRetryOptions, untilAvailable } from '../store-retry.ts';

/**
 * Catches whatever the inner stages gave up on (bad input, unknown type or version, a permanent handler
 * error, retries exhausted, poison, a message id conflict) and makes it a dead letter (C7): a row in the
 * dead_letter table, then the original bytes and headers on `<topic>.dlq` with the failure headers. The row
 * is the dead letter; the topic copy is for other tools. So the record is finished once the row is durable
 * and the copy is either acknowledged or refused for good (too large for the `.dlq` topic, say): a refused
 * copy is noted on the row, alarmed (event `copy-rejected`, metric) and never retried, so one record can
 * never stall its partition. A broker that is merely away is waited out. A redelivery of a message that is
 * already dead (crash before the offset commit, or a duplicate copy) adds nothing.
 */
export function deadLetterStage(deps: {
  writer: DeadLetterWriter;
  publisher: Publisher | undefined;
  topicCopy: boolean;
  reporter: ConsumerReporter;
  metrics: ConsumerMetrics;
  unavailable: StoreRetryOptions;
}): Stage<Delivery> {
  return async (d, next) => {
    try {
      await next(d);
    } catch (thrown) {
      // Revoked or stopping: leave it unfinished for the next owner rather than judge it now.
      if (thrown instanceof AbandonedError || d.signal.aborted) throw thrown instanceof AbandonedError ? thrown : new AbandonedError();
      const error = classifyError(thrown);
      const input = deadLetterInput(d, error);
      const { id, inserted, published, copyError } = await untilAvailable(
        d,
        'recording a dead letter',
        { ...deps.unavailable, anyError: true },
        () => deps.writer.record(input),
      );
      if (!published && copyError === null && deps.topicCopy && deps.publisher) {
        await copyToTopic(d, deps, input, id);
      }
      d.outcome = { kind: 'dead-lettered', code: input.errorCode };
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
      if (error.code === 'ZL_MESSAGE_ID_CONFLICT' && inserted) {
        deps.metrics.messageIdConflicts.inc({ group: d.groupId });
        deps.reporter.emit('message-id-conflict', {
          groupId: d.groupId,
          messageId: input.messageId ?? '',
          type: input.type,
          topic: input.topic,
          partition: input.partition,
          offset: input.offset,
          digest: String(error.details.digest),
          appliedDigest: String(error.details.appliedDigest),
          deadLetterId: id,
        });
      }
    }
  };
}

/** Sends the `.dlq` copy until acknowledged; a permanent refusal is recorded on the row instead of retried. */
async function copyToTopic(d: Delivery, deps: Parameters<typeof deadLetterStage>[0], input: DeadLetterInput, id: string): Promise<void> {
  const topic = deadLetterTopic(input.topic);
  try {
    await publishUntilAcked(
      d,
      deps.publisher as Publisher,
      { topic, key: d.record.key, value: d.record.value, headers: dlqHeaders(d.groupId, input, id) },
      `sending dead letter ${id}`,
      deps.unavailable,
    );
  } catch (thrown) {
    // publishUntilAcked returns only once acknowledged, and throws only abandonment or a permanent refusal.
    if (!(thrown instanceof ZerolossError) || thrown.retryable) throw thrown;
    const reason = errorSummary(thrown);
    await untilAvailable(d, 'noting a refused dead-letter copy', { ...deps.unavailable, anyError: true }, () =>
      deps.writer.markCopyRejected(id, reason),
    );
    deps.metrics.copiesRejected.inc({ group: d.groupId, kind: 'dead-letter' });
    deps.reporter.emit('copy-rejected', {
      groupId: d.groupId,
      kind: 'dead-letter',
      copyTopic: topic,
      topic: input.topic,
      partition: input.partition,
      offset: input.offset,
      messageId: input.messageId,
      deadLetterId: id,
      error: reason,
    });
    return;
  }
  await untilAvailable(d, 'marking a dead letter published', { ...deps.unavailable, anyError: true }, () => deps.writer.markPublished(id));
}

/**
 * The key a message's dead letter is recorded under. Under a message id the digest is part of it: another
 * message under the same id is another dead letter. The effect stage probes it, so a copy of a
 * dead-lettered message stays parked behind it.
 */
export function deadLetterKey(idempotencyKey: string, contentDigest: string | undefined): string {
  return contentDigest ? `${idempotencyKey}#${contentDigest}` : idempotencyKey;
}

function deadLetterInput(d: Delivery, error: ZerolossError): DeadLetterInput {
  const now = new Date();
  const started = error.details.started;
  const attempts = typeof started === 'number' ? started : d.attemptsMade;
  const reason =
    d.gaveUp === 'exhausted'
      ? `gave up after ${attempts} attempts (${d.routed?.route.retry.maxRetries} retries): ${errorSummary(error)}`
      : errorSummary(error);
  const envelope = d.decoded?.envelope;
  const digest = d.routed?.contentDigest;
  const key = d.routed?.idempotencyKey ?? (envelope ? envelope.id : `offset:${d.origin.topic}/${d.origin.partition}/${d.origin.offset}`);
  return {
    groupId: d.groupId,
    // Duplicate copies of one bad message share its key; an unreadable record is known by its position only.
    idempotencyKey: deadLetterKey(key, digest),
    messageId: envelope?.id ?? d.record.headers['zl-id'],
    topic: d.origin.topic,
    partition: d.origin.partition,
    offset: d.origin.offset,
    key: d.record.key,
    type: envelope?.type ?? d.record.headers['zl-type'],
    headers: originalHeaders(d.record.headers),
    payload: d.record.value ?? Buffer.alloc(0),
    errorCode: error.code,
    error: reason,
    stack: stackSummary(error),
    attempts,
    firstFailureAt: d.firstFailureAt ?? now,
    lastFailureAt: d.lastFailureAt ?? now,
    details: Object.keys(error.details).length > 0 ? error.details : undefined,
  };
}

/** The original headers plus the failure headers, whose text is bounded (FAILURE_HEADER_BYTES). */
export function dlqHeaders(groupId: string, input: DeadLetterInput, id: string): Record<string, string> {
  return {
    ...input.headers,
    [DLQ_HEADER.error]: truncateUtf8(input.error, FAILURE_HEADER_BYTES.error),
    [DLQ_HEADER.errorCode]: input.errorCode,
    [DLQ_HEADER.stack]: truncateUtf8(input.stack ?? '', FAILURE_HEADER_BYTES.stack),
    [DLQ_HEADER.originalTopic]: input.topic,
    [DLQ_HEADER.originalPartition]: String(input.partition),
    [DLQ_HEADER.originalOffset]: input.offset.toString(),
    [DLQ_HEADER.attempts]: String(input.attempts),
    [DLQ_HEADER.firstFailureAt]: input.firstFailureAt.toISOString(),
    [DLQ_HEADER.lastFailureAt]: input.lastFailureAt.toISOString(),
    [DLQ_HEADER.group]: groupId,
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
