/**
 * The names and headers of retry copies (`<topic>.retry.<n>`) and dead letters (`<topic>.dlq`): a message
 * format every part that writes or reads such copies shares (the consumer, the Kafka transactional
 * processor, the operations tools), so it lives in core.
 */

/** Headers a retry copy carries on `<topic>.retry.<n>`, next to the original headers. */
export const RETRY_HEADER = {
  /** Attempt number the copy is for (2 for the first retry). */
  attempt: 'zl-attempt',
  /** Epoch milliseconds before which the copy must not be handled. */
  notBefore: 'zl-not-before',
  firstFailureAt: 'zl-first-failure-at',
  lastFailureAt: 'zl-last-failure-at',
  lastError: 'zl-last-error',
  originalTopic: 'zl-original-topic',
  originalPartition: 'zl-original-partition',
  originalOffset: 'zl-original-offset',
} as const;

/** Headers a dead letter carries on `<topic>.dlq`, next to the original headers. */
export const DLQ_HEADER = {
  error: 'zl-dlq-error',
  errorCode: 'zl-dlq-error-code',
  stack: 'zl-dlq-stack',
  originalTopic: 'zl-dlq-original-topic',
  originalPartition: 'zl-dlq-original-partition',
  originalOffset: 'zl-dlq-original-offset',
  attempts: 'zl-dlq-attempts',
  firstFailureAt: 'zl-dlq-first-failure-at',
  lastFailureAt: 'zl-dlq-last-failure-at',
  group: 'zl-dlq-group',
  id: 'zl-dlq-id',
} as const;

const RETRY_TOPIC_RE = /^(.+)\.retry\.(\d+)$/;

export function retryTopic(topic: string, retry: number): string {
  return `${topic}.retry.${retry}`;
}

export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

export function isRetryTopic(topic: string): boolean {
  return RETRY_TOPIC_RE.test(topic);
}
