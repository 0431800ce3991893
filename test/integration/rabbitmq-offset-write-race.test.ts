import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqInspector } from '../../src/adapters/rabbitmq/rabbitmq-inspector.ts';
import { rabbitNames } from '../../src/adapters/rabbitmq/rabbitmq-names.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { uniqueId } from '../helpers/consumer-fixtures.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const topic = `zl-it-${randomBytes(4).toString('hex')}-offw`;
const groupId = uniqueId('offw');
const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });

before(async () => {
  await admin.createTopic(topic, 1);
});

after(async () => {
  await admin.deleteGroupOffsets(groupId, topic, 1).catch(() => {});
  await admin.deleteTopic(topic).catch(() => {});
  await admin.close();
});

/**
 * A reader of a committed offset (an inspector's lag or status, a member taking the partition over) takes
 * the offset message and puts it back. RabbitMQ drops a commit that arrives in between: the queue keeps one
 * message, and the one put back wins. The demo's settle loop read lag that way while the consumers made
 * their last commits; a lost last commit left the lag above 0 until its timeout.
 */
test('a commit made while a reader holds the offset message is not lost', async () => {
  const inspector = new RabbitMqInspector({ url: RABBITMQ_URL });
  const subscriber = new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 });
  const sub = await subscriber.subscribe({ groupId, topics: [topic], onRecords: () => {} });
  const conn = await amqp.connect(RABBITMQ_URL);
  const ch = await conn.createChannel();
  try {
    await waitFor(() => sub.assignment().length === 1, { what: 'partition 0 assigned' });
    await sub.commit([{ topic, partition: 0, offset: 1n }]);

    // A reader between its get and its put-back, as peekOffset does it.
    const peek = rabbitNames.peek(groupId, topic, 0);
    await ch.assertQueue(peek, { exclusive: true, durable: false });
    const held = await ch.get(rabbitNames.offset(groupId, topic, 0), { noAck: false });
    assert.ok(held, 'the committed offset');
    const outcome = await sub.commit([{ topic, partition: 0, offset: 2n }]).then(
      () => 'committed' as const,
      (error: unknown) => error,
    );
    ch.nack(held, false, true);
    await ch.deleteQueue(peek);

    const [read] = await inspector.committedOffsets(groupId);
    if (outcome === 'committed') {
      assert.equal(read?.offset, 2n, 'a commit that resolved is the offset the next reader finds');
    } else {
      // Refused while the reader held it: retryable, and the offset is the one before.
      assert.ok(outcome instanceof ZerolossError, String(outcome));
      assert.equal(outcome.code, 'ZL_TRANSPORT_UNAVAILABLE');
      assert.equal(outcome.retryable, true);
      assert.equal(read?.offset, 1n);
      await sub.commit([{ topic, partition: 0, offset: 2n }]);
      const [again] = await inspector.committedOffsets(groupId);
      assert.equal(again?.offset, 2n);
    }
  } finally {
    await conn.close();
    await sub.close();
    await inspector.close();
  }
});
