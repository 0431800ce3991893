import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { uniqueId } from '../helpers/consumer-fixtures.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// The connection is cut from inside amqplib, at the one moment under test: the same module instance the
// subscriber uses (its channel model), so the cut lands on the subscriber's own socket.
interface AmqpChannel {
  connection: { stream: { destroy(error: Error): void } };
  checkQueue(queue: string): Promise<unknown>;
}
interface ChannelModelClass {
  prototype: { connection: { stream: { destroy(error: Error): void } }; createConfirmChannel(...args: unknown[]): Promise<unknown> };
}
// Not an exported subpath: required by its file name, which is the module the package's entry loads.
const require = createRequire(import.meta.url);
const channelModel = require(join(dirname(require.resolve('amqplib')), 'lib', 'channel_model.js')) as {
  ChannelModel: ChannelModelClass;
  Channel: { prototype: AmqpChannel };
};

const topic = `zl-it-${randomBytes(4).toString('hex')}-take`;
const groupId = uniqueId('take');
const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });

/** Connections the subscribers opened (each opens its control channel as a confirm channel), newest last. */
const connections: Array<{ connection: { stream: { destroy(error: Error): void } } }> = [];
/** When set, the next check of a committed-offset queue cuts the connection it runs on. */
let cutOnOffsetCheck = false;
const { createConfirmChannel } = channelModel.ChannelModel.prototype;
const { checkQueue } = channelModel.Channel.prototype;

before(async () => {
  channelModel.ChannelModel.prototype.createConfirmChannel = function (this: (typeof connections)[number], ...args: unknown[]) {
    connections.push(this);
    return createConfirmChannel.apply(this, args);
  };
  channelModel.Channel.prototype.checkQueue = function (this: AmqpChannel, queue: string) {
    if (cutOnOffsetCheck && queue.startsWith('zl.offset:')) {
      cutOnOffsetCheck = false;
      this.connection.stream.destroy(new Error('test: connection cut while the committed offset is read'));
    }
    return checkQueue.call(this, queue);
  };
  await admin.createTopic(topic, 1);
});

after(async () => {
  channelModel.ChannelModel.prototype.createConfirmChannel = createConfirmChannel;
  channelModel.Channel.prototype.checkQueue = checkQueue;
  await publisher.close();
  await admin.deleteGroupOffsets(groupId, topic, 1).catch(() => {});
  await admin.deleteTopic(topic).catch(() => {});
  await admin.close();
});

/**
 * Taking a partition reads its committed offset first. A connection lost during that read marked every
 * partition lost and ended the session, and then the partition was recorded as read anyway, on the dead
 * session: every later pass skipped it as owned, so it was never locked or consumed again and no other
 * member was given it — its records were never delivered while the member lived.
 */
test('a connection lost while a partition is taken does not leave the partition owned and unread', { timeout: 60_000 }, async () => {
  const settings = { url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 };
  // A committed offset, so that taking the partition reads it (the read under test).
  const first = await new RabbitMqSubscriber(settings).subscribe({ groupId, topics: [topic], onRecords: () => {} });
  await waitFor(() => first.assignment().length === 1, { what: 'the first member to own the partition' });
  const [r0] = await publisher.publish([{ topic, key: 'k', value: Buffer.from('r0'), headers: {} }]);
  assert.ok(r0?.ok);
  await first.commit([{ topic, partition: 0, offset: 1n }]);
  await first.close();

  const values: string[] = [];
  const errors: Error[] = [];
  const member = await new RabbitMqSubscriber(settings).subscribe({
    groupId,
    topics: [topic],
    onRecords: (batch) => values.push(...batch.records.map((r) => r.value.toString())),
    onError: (error) => errors.push(error),
  });
  try {
    await waitFor(() => member.assignment().length === 1, { what: 'the member to own the partition' });
    // The first cut makes the member reconnect and take the partition again; the second lands in that take.
    cutOnOffsetCheck = true;
    connections.at(-1)?.connection.stream.destroy(new Error('test: connection cut'));
    await waitFor(() => !cutOnOffsetCheck, { what: 'the partition to be taken again (its offset read)', timeoutMs: 20_000 });
    const [r1] = await publisher.publish([{ topic, key: 'k', value: Buffer.from('r1'), headers: {} }]);
    assert.ok(r1?.ok);
    await waitFor(() => values.includes('r1'), {
      what: `r1 to be delivered after the cut (assignment ${JSON.stringify(member.assignment())}, errors ${errors.map((e) => e.message).join('; ')})`,
      timeoutMs: 20_000,
    });
    assert.ok(!values.includes('r0'), 'r0 was committed before: not delivered again');
  } finally {
    await member.close();
  }
});
