import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../helpers/kafka.ts';
import { freshSchema } from '../helpers/pg.ts';
import { testConsumer } from '../helpers/test-consumer.ts';

const unknownTopic = (topic: string) => (error: unknown) => {
  assert.ok(error instanceof ZerolossError, `a ZerolossError, not ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`);
  assert.equal(error.code, 'ZL_UNKNOWN_TOPIC');
  assert.equal(error.retryable, false);
  assert.deepEqual(error.details.topics, [topic]);
  assert.ok(error.message.includes(`npx zeroloss topics ensure ${topic} --partitions <n> --kafka <brokers>`), error.message);
  return true;
};

describe('subscribing to a topic the broker does not have', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlsubmiss');
  });
  after(async () => {
    await env.cleanup();
  });

  test('KafkaSubscriber.subscribe rejects with ZL_UNKNOWN_TOPIC naming the missing topic, not the others', async () => {
    const present = uniqueTopic('zl-sub-present');
    const missing = uniqueTopic('zl-sub-missing');
    await createTopic(present, 1);
    const subscriber = new KafkaSubscriber({ brokers: KAFKA_BROKERS });
    await assert.rejects(
      subscriber.subscribe({ groupId: uniqueTopic('zl-sub-group'), topics: [present, missing], onRecords: () => {} }),
      unknownTopic(missing),
    );
  });

  test('Consumer.start() on a missing topic rejects with the ZerolossError that says how to create it', async () => {
    const missing = uniqueTopic('zl-consumer-missing');
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: KAFKA_BROKERS }),
      db: env.db,
      schema: env.schema,
      config: { groupId: uniqueTopic('zl-consumer-group'), topics: [missing] },
    });
    consumer.handle('x', async () => {});
    await assert.rejects(consumer.start(), unknownTopic(missing));
    await consumer.stop();
  });
});
