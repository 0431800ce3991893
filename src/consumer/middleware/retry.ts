import { classifyError, errorSummary } from '../../core/errors.ts';
import type { Publisher } from '../../ports/transport.ts';
import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import { AbandonedError, type Delivery, type Middleware, RETRY_HEADER, originalHeaders, retryTopic } from '../delivery.ts';
import type { RegisteredHandler } from '../handler-registry.ts';
import { decideRetry } from '../retry-policy.ts';
import { isStoreUnavailable, publishUntilAcked, type StoreRetryOptions, unavailableError } from '../store-retry.ts';

/**
 * Runs `attempt` (the effect transaction) under the message type's retry policy (C6). A RetryableError
 * (or any unknown error) is retried; a PermanentError, or the last allowed attempt failing, is thrown on to
 * the dead-letter stage with `gaveUp` set. Database unavailability is waited out and not charged: it says
 * nothing about the message. See retry-policy.ts for the ordering trade-off of the two modes.
 */
export function retryMiddleware(
  attempt: (delivery: Delivery) => Promise<void>,
  deps: { publisher: Publisher | undefined; reporter: ConsumerReporter; metrics: ConsumerMetrics; unavailable: StoreRetryOptions },
): Middleware {
  return async (d) => {
    const route = d.route as RegisteredHandler;
    const policy = route.retry;
    let unavailableDelay = deps.unavailable.baseMs;
    for (;;) {
      if (d.signal.aborted) throw new AbandonedError();
      try {
        await attempt(d);
        return;
      } catch (thrown) {
        if (thrown instanceof AbandonedError) throw thrown;
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
        const mode = policy.mode === 'topic' && deps.publisher ? 'topic' : 'blocking';
        deps.metrics.retries.inc({ group: d.groupId, type: route.type, mode });
        deps.reporter.emit('retry', {
          groupId: d.groupId,
          type: route.type,
          messageId: d.envelope?.id ?? '',
          attempt: d.attempt,
          mode,
          delayMs: decision.delayMs,
          error: errorSummary(error),
        });
        if (mode === 'topic') {
          await publishRetryCopy(d, deps.publisher as Publisher, decision.delayMs, errorSummary(error), deps.unavailable);
          d.outcome = 'retry-scheduled';
          return;
        }
        d.attempt++;
        if (!(await d.lane.sleep(decision.delayMs, d.signal))) throw new AbandonedError();
      }
    }
  };
}

/**
 * Hands the message to `<topic>.retry.<n>`: the original bytes and headers unchanged, plus the attempt
 * state. Its source offset finishes only once the broker has the copy, so a crash in between redelivers
 * the original (and the retry copy, if it was sent, is deduplicated by the inbox).
 */
async function publishRetryCopy(d: Delivery, publisher: Publisher, delayMs: number, error: string, options: StoreRetryOptions) {
  const failedAt = (d.lastFailureAt as Date).toISOString();
  const record = {
    topic: retryTopic(d.origin.topic, d.attempt),
    key: d.record.key,
    value: d.record.value,
    headers: {
      ...originalHeaders(d.record.headers),
      [RETRY_HEADER.attempt]: String(d.attempt + 1),
      [RETRY_HEADER.notBefore]: String(Date.now() + delayMs),
      [RETRY_HEADER.firstFailureAt]: (d.firstFailureAt as Date).toISOString(),
      [RETRY_HEADER.lastFailureAt]: failedAt,
      [RETRY_HEADER.lastError]: error.slice(0, 500),
      [RETRY_HEADER.originalTopic]: d.origin.topic,
      [RETRY_HEADER.originalPartition]: String(d.origin.partition),
      [RETRY_HEADER.originalOffset]: d.origin.offset.toString(),
    },
  };
  await publishUntilAcked(d, publisher, record, `sending a retry copy to ${record.topic}`, options);
}
