import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaTransactionalProcessor } from '../../src/adapters/kafka/kafka-transactional-processor.ts';
import { RetryableError } from '../../src/core/errors.ts';
import { BROKERS, createTopics, readTopic, topicFamily, uniqueId, zlRecord } from '../helpers/consumer-fixtures.ts';

/**
 * The processor pauses its subscription when more than ten batches wait, and resumed it only after taking
 * a batch from a non-empty queue. An aborted transaction (or a rebalance) empties the queue: a paused
 * processor then waited for records that could never come. The fault suite's consumer-kill with
 * --exactly-once kafka-transactions stalled this way (every processor idle, hundreds of orders without
 * output); here the abort comes from one retryable failure while the queue is over the limit.
 */
test('Kafka transactions: a processor paused on a full queue reads on after an aborted transaction', { timeout: 120_000 }, async () => {
  const input = uniqueId('zl-eos-resume-in');
  const output = uniqueId('zl-eos-resume-out');
  await createTopics([...topicFamily(input), output], 1);
  const N = 1_500;
  const publisher = new KafkaPublisher({ brokers: BROKERS });
  try {
    const records = Array.from({ length: N }, (_, i) => zlRecord({ topic: input, key: `k${i % 5}`, type: 'order', payload: { n: i + 1 } }));
    for (const o of await publisher.publish(records)) assert.ok(o.ok);
  } finally {
    await publisher.close();
  }

  let failed = false;
  const processor = new KafkaTransactionalProcessor({
    config: { brokers: BROKERS, groupId: uniqueId('g'), topics: [input], transactionalId: uniqueId('tx'), maxBatch: 100 },
    transform: async ({ record, payload }) => {
      const { n } = payload as { n: number };
      if (n === 1 && !failed) {
        // Long enough for the subscriber to hand over the whole backlog (over ten batches: paused), then abort.
        await delay(3_000);
        failed = true;
        throw new RetryableError('pricing service timeout');
      }
      return [{ topic: output, key: record.key, value: Buffer.from(JSON.stringify({ n })), headers: {} }];
    },
  });
  await processor.start();
  try {
    const outputs = await readTopic(output, N, 60_000);
    const ns = new Set(outputs.map((r) => JSON.parse(r.value.toString()).n as number));
    assert.ok(failed, 'the first transaction was aborted');
    assert.equal(ns.size, N, `every input has its output (${ns.size} of ${N} within 60 s)`);
  } finally {
    await processor.stop();
  }
});
