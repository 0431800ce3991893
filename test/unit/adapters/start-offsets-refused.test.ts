import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RabbitMqSubscriber } from '../../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { RedisStreamsSubscriber } from '../../../src/adapters/redis-streams/redis-streams-subscriber.ts';
import { ZerolossError } from '../../../src/core/errors.ts';

// Nothing listens on port 1: a subscriber that tried to connect would fail with a connection error instead.
const subscribers = [
  ['Redis Streams', new RedisStreamsSubscriber({ url: 'redis://127.0.0.1:1' })],
  ['RabbitMQ', new RabbitMqSubscriber({ url: 'amqp://127.0.0.1:1' })],
] as const;

for (const [name, subscriber] of subscribers) {
  test(`${name} refuses startOffsets (database offsets) with ZL_INVALID_CONFIG before connecting`, async () => {
    await assert.rejects(
      subscriber.subscribe({ groupId: 'g', topics: ['t'], onRecords: () => {}, startOffsets: async () => [] }),
      (error: unknown) => {
        assert.ok(error instanceof ZerolossError);
        assert.equal(error.code, 'ZL_INVALID_CONFIG');
        assert.match(error.message, /database offsets need a transport with offsets/);
        assert.match(error.message, new RegExp(name));
        return true;
      },
    );
  });
}
