import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { createTopic, KAFKA_BROKERS } from '../helpers/kafka.ts';
import { transportConformance } from './transport-conformance.ts';

// The same suite the table log passes, against the shared Kafka (`npm test` starts it): topic and group
// names are unique per test, and the topics are deleted afterwards.
transportConformance('Kafka', async () => {
  const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, clientId: 'zl-conformance' });
  const topics: string[] = [];
  return {
    publisher,
    subscriber: new KafkaSubscriber({
      brokers: KAFKA_BROKERS,
      clientId: 'zl-conformance',
      // Short enough that a closed member's partitions move within the suite's waits; the broker's minimum is 6 s.
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 500,
      rebalanceTimeoutMs: 15_000,
      maxWaitMs: 100,
    }),
    async createTopic(topic, partitions) {
      await createTopic(topic, partitions);
      topics.push(topic);
    },
    async cleanup() {
      await publisher.close();
      if (topics.length === 0) return;
      const admin = createAdmin(KAFKA_BROKERS);
      await admin.deleteTopics({ topics }).catch(() => {});
      await admin.close();
    },
  };
});
