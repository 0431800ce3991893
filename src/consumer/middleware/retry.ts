import type { OutgoingRecord } from '../../core/envelope.ts';
import { classifyError, errorSummary, ZerolossError } from '../../core/errors.ts';
import type { Publisher } from '../../ports/transport.ts';
import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import type { Stage } from '../chain.ts';
import {
  AbandonedError,
  type Delivery,
  FAILURE_HEADER_BYTES,
  RETRY_HEADER,
  type RoutedDelivery,
  originalHeaders,
  retryTopic,
  truncateUtf8,
} from '../delivery.ts';
import type { RegisteredHandler } from '../handler-registry.ts';
import { OutOfTurnError } from '../lane-ticket.ts';
import { decideRetry } from '../retry-policy.ts';
import { isStoreUnavailable, publishUntilAcked, type StoreRetryOptions, unavailableError } from '../store-retry.ts';

/**
 * Runs each attempt (the stages after this one: key order, poison guard, effect) under the message type's
 * retry policy (C6): the one stage that calls `next` again, once per attempt, after the previous failed
 * (it is added to the chain with `perAttempt`). A RetryableError
 * (or any unknown error) is retried; a PermanentError, or the last allowed attempt failing, is thrown on to
 * the dead-letter stage with `gaveUp` set. Database unavailability is waited out and not charged: it says
 * nothing about the message. See retry-policy.ts for the ordering trade-off of the two modes.
 *
 * A retry copy its `.retry.<n>` topic refuses for good (too large, say) does not stall the record or cost
 * it its retries: the alarm fires (event `copy-rejected`, metric) and the rest of its retries run in place,
 * as in blocking mode. A broker that is merely away is waited out, as for any copy.
 */
export function retryStage(deps: {
  publisher: Publisher | undefined;
  reporter: ConsumerReporter;
  metrics: ConsumerMetrics;
  unavailable: StoreRetryOptions;
}): Stage<RoutedDelivery> {
  return async (d, next) => {
    const { route } = d.routed;
    const policy = route.retry;
    let unavailableDelay = deps.unavailable.baseMs;
    let topicRefused = false;
    for (;;) {
      if (d.signal.aborted) throw new AbandonedError();
      try {
        await next(d);
        return;
      } catch (thrown) {
        if (thrown instanceof AbandonedError) throw thrown;
        // Nothing ran: a message of its key ahead of it was not applied yet. It waits for it in the next try.
        if (thrown instanceof OutOfTurnError) continue;
        if (isStoreUnavailable(thrown)) {
          deps.unavailable.onError(unavailableError('the effect transaction', thrown));
          if (!(await d.lane.sleep(unavailableDelay, d.signal))) throw new AbandonedError();
          unavailableDelay = Math.min(deps.unavailable.maxMs, unavailableDelay * 2);
          continue;
        }
        unavailableDelay = deps.unavailable.baseMs;
        const error = classifyError(thrown);
        const now = new Date();
        d.firstFailureAt ??= now;
        d.lastFailureAt = now;
        const decision = decideRetry(policy, error, d.attempt);
        if (decision.action === 'dead-letter') {
          d.gaveUp = decision.reason;
          throw thrown;
        }
        let mode: 'topic' | 'blocking' = policy.mode === 'topic' && deps.publisher && !topicRefused ? 'topic' : 'blocking';
        if (mode === 'topic') {
          const copy = retryCopy(d, decision.delayMs, errorSummary(error));
          const refusal = await publishRetryCopy(d, deps.publisher as Publisher, copy, deps.unavailable);
          if (refusal === undefined) {
            reportRetry(d, deps, route, mode, decision.delayMs, error);
            d.outcome = { kind: 'retry-scheduled', topic: copy.topic };
            return;
          }
          topicRefused = true;
          mode = 'blocking';
          deps.metrics.copiesRejected.inc({ group: d.groupId, kind: 'retry' });
          deps.reporter.emit('copy-rejected', {
            groupId: d.groupId,
            kind: 'retry',
            copyTopic: copy.topic,
            topic: d.origin.topic,
            partition: d.origin.partition,
            offset: d.origin.offset,
            messageId: d.decoded.envelope.id,
            error: errorSummary(refusal),
          });
        }
        reportRetry(d, deps, route, mode, decision.delayMs, error);
        d.attempt++;
        if (!(await d.lane.sleep(decision.delayMs, d.signal))) throw new AbandonedError();
      }
    }
  };
}

function reportRetry(
  d: RoutedDelivery,
  deps: { reporter: ConsumerReporter; metrics: ConsumerMetrics },
  route: RegisteredHandler,
  mode: 'topic' | 'blocking',
  delayMs: number,
  error: ZerolossError,
): void {
  deps.metrics.retries.inc({ group: d.groupId, type: route.type, mode });
  deps.reporter.emit('retry', {
    groupId: d.groupId,
    type: route.type,
    messageId: d.decoded.envelope.id,
    attempt: d.attempt,
    mode,
    delayMs,
    error: errorSummary(error),
  });
}

/**
 * The copy for `<topic>.retry.<n>`: the original bytes and headers unchanged, plus the attempt state (the
 * error text bounded by FAILURE_HEADER_BYTES).
 */
export function retryCopy(d: Delivery, delayMs: number, error: string): OutgoingRecord {
  return {
    topic: retryTopic(d.origin.topic, d.attempt),
    key: d.record.key,
    value: d.record.value,
    headers: {
      ...originalHeaders(d.record.headers),
      [RETRY_HEADER.attempt]: String(d.attempt + 1),
      [RETRY_HEADER.notBefore]: String(Date.now() + delayMs),
      [RETRY_HEADER.firstFailureAt]: (d.firstFailureAt as Date).toISOString(),
      [RETRY_HEADER.lastFailureAt]: (d.lastFailureAt as Date).toISOString(),
      [RETRY_HEADER.lastError]: truncateUtf8(error, FAILURE_HEADER_BYTES.retryError),
      [RETRY_HEADER.originalTopic]: d.origin.topic,
      [RETRY_HEADER.originalPartition]: String(d.origin.partition),
      [RETRY_HEADER.originalOffset]: d.origin.offset.toString(),
    },
  };
}

/**
 * Hands the message to its retry topic. Its source offset finishes only once the broker has the copy, so a
 * crash in between redelivers the original (and the retry copy, if it was sent, is deduplicated by the
 * inbox). Returns the broker's permanent refusal instead of throwing it; outages are waited out.
 */
async function publishRetryCopy(
  d: Delivery,
  publisher: Publisher,
  record: OutgoingRecord,
  options: StoreRetryOptions,
): Promise<ZerolossError | undefined> {
  try {
    await publishUntilAcked(d, publisher, record, `sending a retry copy to ${record.topic}`, options);
    return undefined;
  } catch (thrown) {
    if (thrown instanceof ZerolossError && !thrown.retryable) return thrown;
    throw thrown;
  }
}
