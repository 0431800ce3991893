import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Chain, type Stage } from '../../../src/consumer/chain.ts';
import { buildConsumerChain, type ConsumerChainDeps } from '../../../src/consumer/consumer-chain.ts';
import { consumerConfigSchema } from '../../../src/consumer/consumer-config.ts';
import { createConsumerMetrics } from '../../../src/consumer/consumer-metrics.ts';
import { type Delivery, newDelivery, RETRY_HEADER } from '../../../src/consumer/delivery.ts';
import { HandlerRegistry } from '../../../src/consumer/handler-registry.ts';
import type { LaneControl } from '../../../src/consumer/key-lanes.ts';
import { LaneTicket } from '../../../src/consumer/lane-ticket.ts';
import { OffsetTracker } from '../../../src/consumer/offset-tracker.ts';

const lane: LaneControl = { sleep: async () => true, wait: async () => true, exclusive: (fn) => fn(), ticket: new LaneTicket(undefined) };
const record = { topic: 't', partition: 0, offset: 5n, key: 'k', value: Buffer.from('{}'), headers: {} };
const delivery = (r: typeof record = record) => newDelivery(r, { groupId: 'g', signal: new AbortController().signal, lane, epoch: 1 });

describe('consumer chain', () => {
  test('runs as an onion in the order the stages were added', async () => {
    const log: string[] = [];
    const stage =
      (name: string): Stage<Delivery> =>
      async (d, next) => {
        log.push(`${name}>`);
        await next(d);
        log.push(`<${name}`);
      };
    const chain = Chain.start().add('a', stage('a')).add('b', stage('b')).add('c', stage('c'));
    await chain.build()(delivery());
    assert.deepEqual(log, ['a>', 'b>', 'c>', '<c', '<b', '<a']);
    assert.deepEqual(chain.names, ['a', 'b', 'c']);
  });

  test('a second next() is rejected, also after the first one failed', async () => {
    const twice: Stage<Delivery> = async (d, next) => {
      await next(d);
      await next(d);
    };
    await assert.rejects(
      Chain.start()
        .add('twice', twice)
        .add('end', async () => {})
        .build()(delivery()),
      /twice called next\(\) more than once/,
    );
    let calls = 0;
    const again: Stage<Delivery> = async (d, next) => {
      await next(d).catch(() => next(d));
    };
    const failing: Stage<Delivery> = async () => {
      calls++;
      throw new Error('attempt failed');
    };
    await assert.rejects(
      Chain.start().add('again', again).add('fail', failing).build()(delivery()),
      /again called next\(\) more than once/,
    );
    assert.equal(calls, 1);
  });

  test('a perAttempt stage calls next once per attempt, each after the previous failed, and never after a success', async () => {
    let calls = 0;
    const retry: Stage<Delivery> = async (d, next) => {
      for (;;) {
        try {
          await next(d);
          break;
        } catch {}
      }
      await next(d);
    };
    const flaky: Stage<Delivery> = async () => {
      if (++calls < 3) throw new Error('not yet');
    };
    const run = Chain.start().add('retry', retry, { perAttempt: true }).add('flaky', flaky).build();
    await assert.rejects(run(delivery()), /retry called next\(\) more than once/);
    assert.equal(calls, 3, 'three attempts ran; the call after the success was refused');
  });

  test('a stage must pass on the delivery it was given', async () => {
    const swap: Stage<Delivery> = async (_d, next) => next(delivery());
    await assert.rejects(Chain.start().add('swap', swap).build()(delivery()), /swap passed another delivery/);
  });

  test('the consumer chain has the documented stages in the documented order', () => {
    const config = consumerConfigSchema.parse({ groupId: 'g', topics: ['t'] });
    const deps = {
      config,
      handlers: new HandlerRegistry(config.retry, config.minAcceptedVersions),
      db: {},
      inbox: {},
      deadLetters: {},
      publisher: undefined,
      cache: undefined,
      tracker: new OffsetTracker(),
      metrics: createConsumerMetrics(),
      reporter: { emit: () => true },
      onFinished: () => {},
      report: () => {},
    } as unknown as ConsumerChainDeps;
    const attempt = ['key order', 'poison guard', 'effect'];
    const once = ['offset progress', 'metrics', 'dead letter', 'decode', 'route'];
    assert.deepEqual(buildConsumerChain(deps).stages, [...once, 'retry', 'hold', ...attempt]);
    assert.deepEqual(buildConsumerChain({ ...deps, cache: {} as never }).stages, [...once, 'cache', 'retry', 'hold', ...attempt]);
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
    const d = delivery(copy);
    assert.equal(d.attempt, 3);
    assert.equal(d.attemptsMade, 2);
    assert.deepEqual(d.origin, { topic: 'orders', partition: 4, offset: 99n });
    assert.equal(d.firstFailureAt?.toISOString(), '2024-01-01T00:00:00.000Z');
    const plain = delivery();
    assert.equal(plain.attempt, 1);
    assert.deepEqual(plain.origin, { topic: 't', partition: 0, offset: 5n });
  });
});
