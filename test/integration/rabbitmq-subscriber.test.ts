import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import amqp, { type Message } from 'amqplib';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

test("the subscriber returns a batch's credit with one ack, and reads on past its prefetch", { timeout: 60_000 }, async () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}`;
  const group = `${topic}-group`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 2);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  // amqplib exports no channel classes; a channel of its own gives the prototype the subscriber's share.
  const conn = await amqp.connect(RABBITMQ_URL);
  type Ack = (message: Message, allUpTo?: boolean) => void;
  const proto = Object.getPrototypeOf(await conn.createChannel()) as { ack: Ack };
  await conn.close();
  const original = proto.ack;
  const acks: boolean[] = [];
  proto.ack = function (this: unknown, message, allUpTo) {
    acks.push(allUpTo === true);
    return original.call(this, message, allUpTo);
  };
  // Credit for 50 per partition: 600 records get through only if the acks give it back.
  const subscriber = new RabbitMqSubscriber({ url: RABBITMQ_URL, prefetch: 50, heartbeatIntervalMs: 100, sessionTimeoutMs: 2_000 });
  const seen = new Set<string>();
  let batches = 0;
  const sub = await subscriber.subscribe({
    groupId: group,
    topics: [topic],
    onRecords: (batch) => {
      batches++;
      for (const r of batch.records) seen.add(r.value.toString());
    },
  });
  try {
    for (let round = 0; round < 3; round++) {
      const outcomes = await publisher.publish(
        Array.from({ length: 200 }, (_, i) => ({ topic, key: `k${i % 20}`, value: Buffer.from(`${round}-${i}`), headers: {} })),
      );
      assert.ok(outcomes.every((o) => o.ok));
    }
    await waitFor(() => seen.size === 600, { timeoutMs: 30_000, what: 'all 600 records' });
    assert.ok(acks.length > 0 && acks.every(Boolean), 'every ack is a multiple ack');
    assert.ok(acks.length <= batches, `${acks.length} acks for ${batches} batches of 600 records: one per batch at most`);
  } finally {
    proto.ack = original;
    await sub.close();
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.deleteGroupOffsets(group, topic, 2);
    await admin.close();
  }
});

test('records that arrive within maxBatchWaitMs go to onRecords in one batch', { timeout: 60_000 }, async () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}`;
  const group = `${topic}-group`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 1);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  // 1,500 records are several socket reads (amqplib reads up to 64 KiB at a time); the wait gathers them.
  const subscriber = new RabbitMqSubscriber({
    url: RABBITMQ_URL,
    maxBatchWaitMs: 2_000,
    maxBatchRecords: 2_000,
    prefetch: 2_000,
    heartbeatIntervalMs: 100,
    sessionTimeoutMs: 2_000,
  });
  const batches: number[] = [];
  let sub: Awaited<ReturnType<RabbitMqSubscriber['subscribe']>> | undefined;
  try {
    for (let round = 0; round < 3; round++) {
      const outcomes = await publisher.publish(
        Array.from({ length: 500 }, (_, i) => ({ topic, key: `k${i % 50}`, value: Buffer.alloc(100, round), headers: {} })),
      );
      assert.ok(outcomes.every((o) => o.ok));
    }
    sub = await subscriber.subscribe({ groupId: group, topics: [topic], onRecords: (batch) => void batches.push(batch.records.length) });
    await waitFor(() => batches.reduce((a, b) => a + b, 0) === 1_500, { timeoutMs: 30_000, what: 'all 1,500 records' });
    assert.ok((batches[0] ?? 0) > 1_000, `the first batch holds the records that came within the wait (batches: ${batches.join(', ')})`);
  } finally {
    await sub?.close();
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.deleteGroupOffsets(group, topic, 1);
    await admin.close();
  }
});
