import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compose, type Delivery, type Middleware, newDelivery, RETRY_HEADER } from '../../../src/consumer/delivery.ts';
import type { LaneControl } from '../../../src/consumer/key-lanes.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';

const lane: LaneControl = { sleep: async () => true, wait: async () => true, exclusive: (fn) => fn(), ticket: new LaneTicket(undefined) };
const record = { topic: 't', partition: 0, offset: 5n, key: 'k', value: Buffer.from('{}'), headers: {} };

describe('middleware compose', () => {
  test('runs as an onion in the documented order', async () => {
    const log: string[] = [];
    const mw =
      (name: string): Middleware =>
      async (_d, next) => {
        log.push(`${name}>`);
        await next();
        log.push(`<${name}`);
      };
    await compose([mw('a'), mw('b'), mw('c')])(newDelivery(record, 'g', new AbortController().signal, lane));
    assert.deepEqual(log, ['a>', 'b>', 'c>', '<c', '<b', '<a']);
  });

  test('a second next() is rejected', async () => {
    const twice: Middleware = async (_d, next) => {
      await next();
      await next();
    };
    await assert.rejects(compose([twice, async () => {}])({} as Delivery), /next\(\) more than once/);
  });

  test('a retry copy carries its attempt and origin', () => {
    const copy = {
      ...record,
      topic: 'orders.retry.2',
      headers: {
        [RETRY_HEADER.attempt]: '3',
        [RETRY_HEADER.originalTopic]: 'orders',
        [RETRY_HEADER.originalPartition]: '4',
        [RETRY_HEADER.originalOffset]: '99',
        [RETRY_HEADER.firstFailureAt]: '2024-01-01T00:00:00.000Z',
      },
    };
    const d = newDelivery(copy, 'g', new AbortController().signal, lane);
    assert.equal(d.attempt, 3);
    assert.equal(d.attemptsMade, 2);
    assert.deepEqual(d.origin, { topic: 'orders', partition: 4, offset: 99n });
    assert.equal(d.firstFailureAt?.toISOString(), '2024-01-01T00:00:00.000Z');
    const plain = newDelivery(record, 'g', new AbortController().signal, lane);
    assert.equal(plain.attempt, 1);
    assert.deepEqual(plain.origin, { topic: 't', partition: 0, offset: 5n });
  });
});
