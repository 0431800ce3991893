/**
 * `zeroloss/kafka`: Apache Kafka as the transport, through `@platformatic/kafka` (an optional peer: install it).
 *
 *   const transport = kafka({ brokers: ['127.0.0.1:9092'] })
 */
export { kafka, type KafkaOptions, type KafkaTransport } from '../adapters/kafka/kafka-transport.ts';
export type { KafkaPublisherConfig } from '../adapters/kafka/kafka-publisher.ts';
export type { KafkaSubscriberConfig } from '../adapters/kafka/kafka-subscriber.ts';
export type { KafkaInspectorOptions } from '../adapters/kafka/kafka-inspector.ts';
export type { KafkaSaslOptions, KafkaTlsOptions, Secret } from '../adapters/kafka/kafka-connection.ts';
export type {
  KafkaTransactionalProcessor,
  TransactionalProcessorConfig,
  Transform,
  TransformInput,
} from '../adapters/kafka/kafka-transactional-processor.ts';
