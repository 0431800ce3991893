import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Consumer as KafkaConsumer, Message } from '@platformatic/kafka';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { kafka } from '../../src/adapters/kafka/kafka-driver.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { KafkaTransactionalProcessor } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
import { BROKERS, createTopics, readTopic, topicFamily, uniqueId, zlRecord } from '../helpers/consumer-fixtures.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * Found by the fault suite (kafka-leader-kill with --exactly-once kafka-transactions: 116 inputs with two
 * committed outputs): a processor that takes partitions over while a transaction that consumed some of their
 * records is still completing must start after those records. The consumer's own offset fetch does not ask
 * for stable offsets, so it started from the older committed offset and produced those records' outputs a
 * second time. Here the completing transaction is held open on purpose: it consumed records 1-5 of group G
 * (offsets committed in it), and it commits only once the processor has joined G.
 *
 * Seen failing on this build (its outputs began at record 1, not 6). A fix was tried (start offsets fetched with
 * require_stable through the admin client, retried on UNSTABLE_OFFSET_COMMIT): this test passed with it, but
 * in the fault suite's kafka-leader-kill the processors then stalled behind transactions left open (564 orders
 * without output) and kafka-rolling-restart stopped outright, so it was not landed. `todo` keeps npm test green
 * until the fix that also completes or fences a processor's own in-doubt transaction lands (issue #19 note).
 */
test('Kafka transactions: a processor joining while a transaction that consumed records is completing starts after them', {
  timeout: 120_000,
  todo: 'the processor starts from the older committed offset and produces those outputs again (#19)',
}, async () => {
  const input = uniqueId('zl-eos-stable-in');
  const output = uniqueId('zl-eos-stable-out');
  const groupId = uniqueId('g');
  await createTopics([...topicFamily(input), output], 1);
  const publisher = new KafkaPublisher({ brokers: BROKERS });
  try {
    const records = Array.from({ length: 10 }, (_, i) => zlRecord({ topic: input, key: 'k', type: 'order', payload: { n: i + 1 } }));
    for (const o of await publisher.publish(records)) assert.ok(o.ok);
  } finally {
    await publisher.close();
  }

  // A member of G that read records 1-5 and put their offsets in a transaction, then left the group.
  const reader = new KafkaSubscriber({ brokers: BROKERS, maxWaitMs: 100, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500 });
  let seen = 0;
  const subscription = await reader.subscribe({
    groupId,
    topics: [input],
    onRecords: (batch) => {
      seen += batch.records.length;
    },
  });
  await waitFor(() => seen >= 5, { what: 'the first member reading the input' });
  const group = subscription.groupMetadata();
  const producer = new kafka.Producer({
    clientId: 'zl-test-held-transaction',
    bootstrapBrokers: BROKERS,
    transactionalId: uniqueId('tx-held'),
    producerId: -1n,
    producerEpoch: -1,
    idempotent: true,
    acks: kafka.ProduceAcks.ALL,
  });
  const transaction = await producer.beginTransaction();
  await transaction.addConsumer({ groupId } as KafkaConsumer<string, Buffer, string, string>);
  // Commits offset 5 (records 1-5 consumed) when the transaction commits.
  await transaction.addOffset({ topic: input, partition: 0, offset: 4n, metadata: { consumer: group } } as unknown as Message<
    string,
    Buffer,
    string,
    string
  >);
  await subscription.close();

  const processor = new KafkaTransactionalProcessor({
    config: { brokers: BROKERS, groupId, topics: [input], transactionalId: uniqueId('tx'), maxBatch: 100 },
    transform: async ({ record, payload }) => [
      { topic: output, key: record.key, value: Buffer.from(JSON.stringify(payload)), headers: {} },
    ],
  });
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await waitFor(
      async () => {
        const [described] = (await admin.describeGroups({ groups: [groupId] })).values();
        return String(described?.state).toUpperCase() === 'STABLE' && (described?.members.size ?? 0) > 0;
      },
      { what: 'the processor joined the group', timeoutMs: 60_000 },
    );
    await transaction.commit();
    const outputs = await readTopic(output, 5, 60_000);
    const ns = outputs.map((r) => (JSON.parse(r.value.toString()) as { n: number }).n);
    assert.deepEqual(ns, [6, 7, 8, 9, 10], 'only the records after the completed transaction');
  } finally {
    await processor.stop();
    await producer.close();
    await admin.close();
  }
});
