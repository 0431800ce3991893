export { ZerolossError, RetryableError, PermanentError, classifyError, errorSummary, type ErrorCode } from './core/errors.ts';
export { type Envelope, type OutgoingRecord, type IncomingRecord, HEADER, readEnvelope } from './core/envelope.ts';
export { type MessageInput, validateTopic } from './core/message.ts';
export { Snowflake, parseSnowflake } from './core/snowflake.ts';
export { uuidv7 } from './core/ids.ts';
export type { SqlExecutor, Database } from './ports/sql-executor.ts';
export type { Publisher, PublishOutcome, Subscriber, Subscription, ReceivedBatch } from './ports/transport.ts';
export { MESSAGE_STATE, type MessageState, type RelaySource } from './ports/outbox-store.ts';
export { pgDatabase } from './adapters/postgres/pg-database.ts';
export { pgliteDatabase, pgliteExecutor } from './adapters/postgres/pglite-database.ts';
export { migrate, MIGRATIONS } from './adapters/postgres/migrations.ts';
export { PostgresOutboxStore } from './adapters/postgres/postgres-outbox-store.ts';
export { StateColumnSource, type StateColumnSourceOptions } from './adapters/postgres/state-column-source.ts';
export { KafkaPublisher, type KafkaPublisherConfig } from './adapters/kafka/kafka-publisher.ts';
export { createOutbox, type Outbox, type OutboxConfig } from './outbox/outbox.ts';
export { Relay, type RelayConfig } from './outbox/relay.ts';
export { TableLogPublisher, type TableLogPublisherConfig } from './adapters/table-log/table-log-publisher.ts';
export { TableLogSubscriber, type TableLogSubscriberConfig } from './adapters/table-log/table-log-subscriber.ts';
export type { TableLogSubscription } from './adapters/table-log/table-log-subscription.ts';
export { TableLogAdmin, type TableLogAdminConfig, type RetentionOptions } from './adapters/table-log/table-log-admin.ts';
export { partitionFor } from './adapters/shared/partition-for.ts';
export { Consumer, createConsumer, type ConsumerOptions } from './consumer/consumer.ts';
export { consumerConfigSchema, type ConsumerConfig } from './consumer/consumer-config.ts';
export type { ConsumerEvents, DeadLetterEvent, ProcessedEvent, RetryEvent } from './consumer/consumer-events.ts';
export type { ConsumedMessage, Handler, HandlerContext, HandlerOptions, Upcaster } from './consumer/handler-registry.ts';
export { type RetryPolicy, type RetryPolicyInput, DEFAULT_RETRY_POLICY } from './consumer/retry-policy.ts';
export { DLQ_HEADER, RETRY_HEADER, deadLetterTopic, retryTopic } from './consumer/delivery.ts';
export type { SequenceEvent } from './consumer/gap-detector.ts';
export { replayDeadLetters, deadLetterIds, REPLAY_HEADER } from './consumer/dead-letters.ts';
export {
  KafkaTransactionalProcessor,
  type TransactionalProcessorConfig,
  type Transform,
  type TransformInput,
  createDatabaseOffsetConsumer,
  databaseOffsets,
} from './consumer/transactional-processor.ts';
export { KafkaSubscriber, type KafkaSubscriberConfig, type KafkaSubscriberHooks } from './adapters/kafka/kafka-subscriber.ts';
export { PostgresInboxStore } from './adapters/postgres/postgres-inbox-store.ts';
export { PostgresDeadLetterStore } from './adapters/postgres/postgres-dead-letter-store.ts';
export { RedisInboxCache, type RedisInboxCacheConfig } from './adapters/redis/redis-inbox-cache.ts';
export type { InboxStore, StartLog, InboxEntry } from './ports/inbox-store.ts';
export type { InboxCache } from './ports/inbox-cache.ts';
export type {
  DeadLetterQueue,
  DeadLetterWriter,
  DeadLetterSummary,
  DeadLetterDetail,
  DeadLetterFilter,
} from './ports/dead-letter-store.ts';
export { KafkaInspector, type KafkaInspectorOptions } from './adapters/kafka/kafka-inspector.ts';
export { KafkaTopicAdmin } from './adapters/kafka/kafka-topic-admin.ts';
export { TableLogInspector } from './adapters/table-log/table-log-inspector.ts';
export { PostgresOperationsStore } from './adapters/postgres/postgres-operations-store.ts';
export type { BrokerInspector, BrokerRecord, PartitionRange, TopicAdmin } from './ports/broker-inspector.ts';
export { reconcile, type ReconcileOptions, type ReconcileReport } from './operations/reconcile.ts';
export { ReconcileScheduler, type ReconcileSchedule } from './operations/reconcile-scheduler.ts';
export { resend, type ResendOptions, type ResendResult } from './operations/resend.ts';
export { trace, type MessageTrace, type TraceOptions } from './operations/trace.ts';
export { status, type Status, type StatusOptions } from './operations/status.ts';
export {
  listStuckWork,
  releaseParked,
  discardParked,
  replayDeadLettersAudited,
  discardDeadLettersAudited,
} from './operations/intervention.ts';
export { cleanup, type RetentionConfig } from './operations/retention.ts';
export { raisePartitions, forwardBacklog, divert, undivert } from './operations/backlog.ts';
export { createOpsMetrics, type OpsMetrics } from './operations/ops-metrics.ts';
export { OpsCollector } from './operations/ops-collector.ts';
export { recordSequenceAlarms } from './operations/sequence-alarms.ts';
export { parseTime, parseDuration } from './operations/time-window.ts';
