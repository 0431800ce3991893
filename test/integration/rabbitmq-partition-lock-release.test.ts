import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import amqp from 'amqplib';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { rabbitNames } from '../../src/adapters/rabbitmq/rabbitmq-names.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import type { RabbitMqSubscription } from '../../src/adapters/rabbitmq/rabbitmq-subscription.ts';
import type { SubscribeOptions } from '../../src/ports/transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const FAST = { heartbeatIntervalMs: 100, sessionTimeoutMs: 1_500, rebalanceTimeoutMs: 30_000 } as const;

/**
 * A member holds a partition by an exclusive lock queue that lives as long as its connection. A partition
 * it locked but is not reading must have its lock deleted while that connection lives: otherwise, once the
 * assignment gives the partition to another member, that member is refused the lock on every pass and the
 * partition is read by nobody until the first member's connection ends.
 */

test('a partition whose take failed is read by the member the assignment moves it to', { timeout: 90_000 }, async () => {
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const topic = `${prefix}-take`;
  const groupId = `${prefix}-group`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 2);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  // Partition 2's committed offset cannot be read while another connection holds its peek queue: a take
  // of partition 2 locks it, then fails after waiting ~2 s for the peek queue.
  const holder = await amqp.connect(RABBITMQ_URL);
  const peekChannel = await holder.createChannel();
  const peek = rabbitNames.peek(groupId, topic, 2);
  await peekChannel.assertQueue(peek, { exclusive: true, durable: false, autoDelete: false });
  // Member ids sort as their client ids: with three members, partition i goes to the (i mod 3)-th.
  const values: string[] = [];
  const errors: Error[] = [];
  const members: RabbitMqSubscription[] = [];
  const join = async (n: number, options: Partial<SubscribeOptions> = {}) => {
    const member = await new RabbitMqSubscriber({ url: RABBITMQ_URL, clientId: `${prefix}-${n}`, ...FAST }).subscribe({
      groupId,
      topics: [topic],
      onRecords: () => {},
      ...options,
    });
    members.push(member);
    return member;
  };
  try {
    const first = await join(1, { onRecords: (batch) => values.push(...batch.records.map((r) => `${r.partition}:${r.value}`)) });
    const second = await join(2);
    const third = await join(3, { onError: (error) => errors.push(error) });
    await waitFor(() => only(first, 0) && only(second, 1) && third.assignment().length === 0, {
      what: 'partitions 0 and 1 to be read by the first and second member',
    });
    // Grown to three partitions, the third member's share is partition 2: it locks it and fails to read it.
    await admin.createTopic(topic, 3);
    await waitFor(() => errors.some((e) => e.message.includes(peek)), {
      what: "the third member's take of partition 2 to fail on the held peek queue",
      timeoutMs: 30_000,
    });
    // With the second member gone, partition 2 belongs to the first member and partition 1 to the third.
    // Taking partition 1 shows the third member has stopped trying partition 2: its peek queue is free now.
    await second.close();
    await waitFor(() => third.assignment().some((p) => p.partition === 1), { what: 'the third member to read partition 1' });
    await peekChannel.deleteQueue(peek);
    await holder.close();

    const key = keyOf(2, 3);
    const [outcome] = await publisher.publish([{ topic, key, value: Buffer.from('after'), headers: {} }]);
    assert.equal(outcome?.ok && outcome.partition, 2);
    await waitFor(() => values.includes('2:after'), {
      what: `the first member to read partition 2 (it reads ${JSON.stringify(first.assignment())})`,
      timeoutMs: 20_000,
    });
  } finally {
    for (const member of members) await member.close();
    await holder.close().catch(() => {});
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.deleteGroupOffsets(groupId, topic, 3);
    await admin.close();
  }
});

test('a partition lost to a broker cancel is read by the member the assignment moves it to', { timeout: 60_000 }, async () => {
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const topic = `${prefix}-cancel`;
  const groupId = `${prefix}-group`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 1);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const conn = await amqp.connect(RABBITMQ_URL);
  const channel = await conn.createChannel();
  // The pass that drops the lost partition waits in onRevoke until the new member has joined, so that pass
  // already counts it: the partition goes to the new member, not back to the one that lost it.
  let revokedLost = false;
  let letRevokeEnd = () => {};
  const revokeHeld = new Promise<void>((resolve) => {
    letRevokeEnd = resolve;
  });
  const members: RabbitMqSubscription[] = [];
  try {
    const owner = await new RabbitMqSubscriber({ url: RABBITMQ_URL, clientId: `${prefix}-2`, ...FAST }).subscribe({
      groupId,
      topics: [topic],
      onRecords: () => {},
      onRevoke: async () => {
        if (revokedLost) return;
        revokedLost = true;
        await revokeHeld;
      },
    });
    members.push(owner);
    await waitFor(() => only(owner, 0), { what: 'the first member to read partition 0' });
    // Deleting the stream makes the broker cancel the member's consumer; the stream is then made again.
    await channel.deleteQueue(rabbitNames.partition(topic, 0));
    await waitFor(() => revokedLost, { what: 'the first member to drop the partition its consumer lost' });
    await admin.createTopic(topic, 1);
    const values: string[] = [];
    // Sorts first: partition 0 is its share once the two members know each other.
    const next = await new RabbitMqSubscriber({ url: RABBITMQ_URL, clientId: `${prefix}-1`, ...FAST }).subscribe({
      groupId,
      topics: [topic],
      onRecords: (batch) => values.push(...batch.records.map((r) => r.value.toString())),
    });
    members.push(next);
    letRevokeEnd();

    const [outcome] = await publisher.publish([{ topic, key: 'k', value: Buffer.from('after'), headers: {} }]);
    assert.ok(outcome?.ok);
    await waitFor(() => values.includes('after'), {
      what: `the second member to read partition 0 (the first reads ${JSON.stringify(owner.assignment())})`,
      timeoutMs: 20_000,
    });
  } finally {
    letRevokeEnd();
    for (const member of members) await member.close();
    await conn.close();
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.deleteGroupOffsets(groupId, topic, 1);
    await admin.close();
  }
});

function only(member: RabbitMqSubscription, partition: number): boolean {
  const assignment = member.assignment();
  return assignment.length === 1 && assignment[0]!.partition === partition;
}

/** A key the publisher sends to `partition` of a topic with `partitions` partitions. */
function keyOf(partition: number, partitions: number): string {
  for (let i = 0; ; i++) if (partitionFor(`k${i}`, partitions) === partition) return `k${i}`;
}
