import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import type { Subscription } from '../../src/ports/transport.ts';
import { uniqueId } from '../helpers/consumer-fixtures.ts';
import { consumerOverTransport } from '../helpers/consumer-over-transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// The consumer runtime unchanged over RabbitMQ streams; the streams and the groups' offset queues are
// deleted afterwards.
consumerOverTransport('RabbitMQ streams', async ({ groupId }) => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}-orders`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  const topics = [topic, `${topic}.dlq`, `${topic}.retry.1`];
  for (const t of topics) await admin.createTopic(t, 4);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const witnessGroup = uniqueId('witness');
  let witness: Subscription | undefined;
  return {
    topic,
    publisher,
    subscriber: () =>
      new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000, offsetRetentionMs: 600_000 }),
    async retried() {
      // A stream does not count its messages on a passive declare: read the retry topic with a group of its own.
      const keys: string[] = [];
      witness = await new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 }).subscribe({
        groupId: witnessGroup,
        topics: [`${topic}.retry.1`],
        onRecords: (batch) => keys.push(...batch.records.map((r) => r.key)),
      });
      await waitFor(() => keys.length > 0, { what: 'the flaky message on the retry topic' });
      assert.deepEqual(keys, ['f'], 'only the flaky message went through the retry topic');
      return keys.length;
    },
    async cleanup() {
      await witness?.close();
      await admin.deleteGroupOffsets(witnessGroup, `${topic}.retry.1`, 4);
      await publisher.close();
      for (const t of topics) {
        await admin.deleteTopic(t);
        await admin.deleteGroupOffsets(groupId, t, 4);
      }
      await admin.close();
    },
  };
});
