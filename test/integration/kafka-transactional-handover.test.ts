import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Consumer as KafkaConsumer, Message } from '@platformatic/kafka';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { kafka } from '../../src/adapters/kafka/kafka-driver.ts';
import { KafkaSubscriber, type KafkaSubscription } from '../../src/adapters/kafka/kafka-subscriber.ts';
import type { SubscribeOptions } from '../../src/ports/transport.ts';
import { KafkaTransactionalProcessor } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
import { BROKERS, readTopic, uniqueId } from '../helpers/consumer-fixtures.ts';
import { assertOneOutputEach, inputAndOutput, toOutput } from '../helpers/kafka-transactional.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * Found by the fault suite (kafka-leader-kill with --exactly-once kafka-transactions: 116 inputs with two
 * committed outputs): a processor that takes partitions over while a transaction that consumed some of their
 * records is still completing must start after those records. The consumer's own offset fetch does not ask
 * for stable offsets, so it started from the older committed offset and produced those records' outputs a
 * second time. Here the completing transaction is held open on purpose: it consumed records 1-5 of group G
 * (offsets committed in it), and it commits only once the processor has joined G.
 *
 * Seen failing before the processor fetched its start offsets with require_stable (its outputs began at
 * record 1, not 6). That fix alone stalled the fault suite's broker scenarios until failed transactions also
 * replaced their producer (29999cc).
 */
test('Kafka transactions: a processor joining while a transaction that consumed records is completing starts after them', {
  timeout: 120_000,
}, async () => {
  const { input, output, groupId } = await inputAndOutput('stable', 1, 10, () => 'k');

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
    transform: toOutput(output),
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

/**
 * Found by the fault suite (kafka-rolling-restart with --exactly-once kafka-transactions: 32 inputs with two
 * committed outputs, after the stable-offsets fix above). A transaction that outlasts its member's revoke (a
 * broker slow to answer; the revoke waits `revokeTimeoutMs`, then lets the group move on) committed its input
 * offsets under the membership current at commit time, i.e. the new generation, so the coordinator accepted
 * offsets of a partition another member already read from the older committed offset: both produced its
 * records' outputs. Here the first processor's transform holds its first transaction open until a second
 * processor has joined and been given one of the two partitions.
 */
test('Kafka transactions: a transaction that outlasts its revoke does not commit the moved partitions', { timeout: 120_000 }, async () => {
  // Keys spread over both partitions.
  const { input, output, groupId } = await inputAndOutput('revoke', 2, 20, (i) => `k${i}`);
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let holding = false;
  const transform = toOutput(output);
  const config = (n: number) => ({
    brokers: BROKERS,
    groupId,
    topics: [input],
    transactionalId: `${groupId}-${n}`,
    maxBatch: 100,
    revokeTimeoutMs: 500,
  });
  const subscriberConfig = {
    brokers: BROKERS,
    maxWaitMs: 100,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 10_000,
  };
  const first = new KafkaTransactionalProcessor({
    config: config(1),
    subscriber: new KafkaSubscriber(subscriberConfig),
    transform: async (input) => {
      if (!holding) {
        holding = true;
        await held;
      }
      return transform(input);
    },
  });
  const second = new KafkaTransactionalProcessor({ config: config(2), subscriber: new KafkaSubscriber(subscriberConfig), transform });
  const admin = createAdmin(BROKERS);
  try {
    await first.start();
    await waitFor(() => holding, { what: 'the first processor inside its first transaction', timeoutMs: 60_000 });
    await second.start();
    await waitFor(
      async () => {
        const [described] = (await admin.describeGroups({ groups: [groupId] })).values();
        return String(described?.state).toUpperCase() === 'STABLE' && (described?.members.size ?? 0) === 2;
      },
      { what: 'both processors in the group', timeoutMs: 60_000 },
    );
    release();
    await assertOneOutputEach(admin, groupId, output, 20);
  } finally {
    release();
    await first.stop();
    await second.stop();
    await admin.close();
  }
});

/**
 * Found by the fault suite (kafka-leader-kill with --exactly-once kafka-transactions: 190 inputs with two
 * outputs, both from the same processor, after the two fixes above). When a fetch fails the subscription
 * reopens its stream from the committed offsets within the same generation, as the Subscriber port allows,
 * so records already queued come again; the processor queued them twice and gave each two outputs. Here a
 * subscriber hands its first batch over twice, as a reopened stream does.
 */
test('Kafka transactions: records handed over again within a generation get one output', { timeout: 120_000 }, async () => {
  const { input, output, groupId } = await inputAndOutput('again', 1, 10, () => 'k');
  class HandsOverTwice extends KafkaSubscriber {
    override subscribe(options: SubscribeOptions): Promise<KafkaSubscription> {
      let first = true;
      return super.subscribe({
        ...options,
        onRecords: (batch) => {
          options.onRecords(batch);
          if (first) options.onRecords(batch);
          first = false;
        },
      });
    }
  }
  const processor = new KafkaTransactionalProcessor({
    config: { brokers: BROKERS, groupId, topics: [input], transactionalId: uniqueId('tx') },
    subscriber: new HandsOverTwice({ brokers: BROKERS, maxWaitMs: 100 }),
    transform: toOutput(output),
  });
  const admin = createAdmin(BROKERS);
  await processor.start();
  try {
    await assertOneOutputEach(admin, groupId, output, 10);
  } finally {
    await processor.stop();
    await admin.close();
  }
});
