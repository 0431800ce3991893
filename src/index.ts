/**
 * `zeroloss`: the features, the ports and the errors. It loads no driver: backends come from their own
 * entry points (`zeroloss/postgres`, `zeroloss/pglite`, `zeroloss/kafka`, `zeroloss/table-log`,
 * `zeroloss/redis`, `zeroloss/redis-streams`, `zeroloss/rabbitmq`), operations from `zeroloss/operations`.
 */
export { createOutbox, type Outbox, type OutboxOptions, type OutboxConfig } from './outbox/outbox.ts';
export type { SentMessage, WhenSentOptions } from './outbox/when-sent.ts';
export { createRelay, type RelayOptions } from './outbox/create-relay.ts';
export type { Relay, RelayConfig, RelayEvents, RelayHealth } from './outbox/relay.ts';
export { createConsumer, type ConsumerOptions } from './entry/create-consumer.ts';
export type { Consumer } from './consumer/consumer.ts';
export type { ConsumerConfig } from './consumer/consumer-config.ts';
export type { ConsumerEvents, DeadLetterEvent, ProcessedEvent, RetryEvent } from './consumer/consumer-events.ts';
export type { ConsumedMessage, Handler, HandlerContext, HandlerOptions, Upcaster } from './consumer/handler-registry.ts';
export { type RetryPolicy, type RetryPolicyInput, DEFAULT_RETRY_POLICY } from './consumer/retry-policy.ts';
export { DLQ_HEADER, RETRY_HEADER, deadLetterTopic, retryTopic } from './consumer/delivery.ts';
export { REPLAY_HEADER } from './consumer/dead-letters.ts';
export type { SequenceEvent } from './consumer/gap-detector.ts';

export { ZerolossError, RetryableError, PermanentError, classifyError, errorSummary, type ErrorCode } from './core/errors.ts';
export { type Envelope, type OutgoingRecord, type IncomingRecord, HEADER, readEnvelope } from './core/envelope.ts';
export { type MessageInput, validateTopic } from './core/message.ts';
export { Snowflake, parseSnowflake } from './core/snowflake.ts';
export { uuidv7 } from './core/ids.ts';

export type { Store, Transport, Cache, OperationsStore, MigrateResult } from './ports/backends.ts';
export type { SqlExecutor, Database } from './ports/sql-executor.ts';
export type { Publisher, PublishOutcome, Subscriber, Subscription, SubscribeOptions, ReceivedBatch } from './ports/transport.ts';
export { MESSAGE_STATE, type MessageState, type RelaySource, type OutboxWriter, type SendStatus } from './ports/outbox-store.ts';
export type { InboxStore, StartLog, InboxEntry } from './ports/inbox-store.ts';
export type { InboxCache } from './ports/inbox-cache.ts';
export type {
  DeadLetterQueue,
  DeadLetterWriter,
  DeadLetterSummary,
  DeadLetterDetail,
  DeadLetterFilter,
} from './ports/dead-letter-store.ts';
export type { BrokerInspector, BrokerRecord, PartitionRange, TopicAdmin } from './ports/broker-inspector.ts';
export type { Tracing, MessageSpan, SpanAttributes } from './ports/tracing.ts';
export type { Logger, LogFields } from './ports/logger.ts';
// Both load their package (an optional peer) on first call, not on import: `import 'zeroloss'` loads neither.
export { otelTracing, type OtelTracingOptions } from './adapters/otel/otel-tracing.ts';
export { defaultLogger, type DefaultLoggerOptions } from './adapters/log/default-logger.ts';
