import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import type { Subscriber } from '../../src/ports/transport.ts';
import { transportConformance } from './transport-conformance.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// The same suite as Kafka's, on the shared RabbitMQ: topic and group names are unique per test, and the
// streams and the groups' offset queues are deleted afterwards (lock and membership queues go with
// their connections).
transportConformance('RabbitMQ streams', async () => {
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  const topics = new Map<string, number>();
  const groups = new Set<string>();
  // Short enough that a closed member's partitions move within the suite's waits.
  const inner = new RabbitMqSubscriber({
    url: RABBITMQ_URL,
    heartbeatIntervalMs: 100,
    sessionTimeoutMs: 2_000,
    offsetRetentionMs: 600_000,
  });
  const subscriber: Subscriber = {
    subscribe(options) {
      groups.add(options.groupId);
      return inner.subscribe(options);
    },
  };
  return {
    publisher,
    subscriber,
    async createTopic(topic, partitions) {
      await admin.createTopic(topic, partitions);
      topics.set(topic, partitions);
    },
    async cleanup() {
      await publisher.close();
      for (const [topic, partitions] of topics) {
        await admin.deleteTopic(topic).catch(() => {});
        for (const group of groups) await admin.deleteGroupOffsets(group, topic, partitions).catch(() => {});
      }
      await admin.close();
    },
  };
});
