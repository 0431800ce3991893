import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Consumer } from '../../../src/consumer/consumer.ts';
import type { DeadLetterWriter } from '../../../src/ports/dead-letter-store.ts';
import type { InboxStore, StartLog } from '../../../src/ports/inbox-store.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import type { Subscriber } from '../../../src/ports/transport.ts';

// Nothing here reaches the database or a broker: only construction and validation are exercised.
const db = {} as Database;
const subscriber = {} as Subscriber;
const inbox = {} as InboxStore & StartLog;
const deadLetters = {} as DeadLetterWriter;
const make = (config: Record<string, unknown>) =>
  new Consumer({ subscriber, db, inbox, deadLetters, config: { groupId: 'g', topics: ['t'], ...config } as never });

describe('consumer config', () => {
  test('defaults: batch 500, 3 retries 2 s apart in place, poison after 3 starts, inbox kept 14 d against a 7 d replay horizon', () => {
    const c = make({});
    assert.equal(c.config.batchSize, 500);
    assert.deepEqual(c.config.retry, { maxRetries: 3, delayMs: 2_000, backoff: 'fixed', maxDelayMs: 300_000, mode: 'blocking' });
    assert.equal(c.config.poison.maxStarts, 3);
    assert.equal(c.config.inbox.cacheTtlMs, 86_400_000);
    assert.ok(Object.isFrozen(c.config));
  });

  test('unknown keys are rejected by name, also nested ones', () => {
    assert.throws(() => make({ batchsize: 10 }), { code: 'ZL_INVALID_CONFIG', message: /batchsize/ });
    assert.throws(() => make({ inbox: { ttl: 1 } }), { code: 'ZL_INVALID_CONFIG', message: /inbox.*ttl/ });
    assert.throws(() => make({ retry: { retries: 1 } }), { code: 'ZL_INVALID_CONFIG', message: /retries/ });
    // The schema is the store's: set once on the store bundle, never per feature.
    assert.throws(() => make({ schema: 'zeroloss' }), { code: 'ZL_INVALID_CONFIG', message: /schema/ });
  });

  test('inbox retention must outlive the replay horizon', () => {
    assert.throws(() => make({ inbox: { retentionMs: 1_000, replayHorizonMs: 1_000 } }), {
      code: 'ZL_INVALID_CONFIG',
      message: /inbox.retentionMs: must be longer than inbox.replayHorizonMs/,
    });
  });

  test('retry and dead-letter topics are derived, not listed', () => {
    assert.throws(() => make({ topics: ['orders', 'orders.retry.1'] }), /main topics only/);
    assert.throws(() => make({ topics: ['orders.dlq'] }), /main topics only/);
  });

  test('retry topics subscribed follow the types that use them', () => {
    const c = new Consumer({
      subscriber,
      db,
      inbox,
      deadLetters,
      publisher: { publish: async () => [], close: async () => {} },
      config: { groupId: 'g', topics: ['o'] },
    });
    c.handle('a', async () => {});
    c.handle('b', async () => {}, { retry: { mode: 'topic', maxRetries: 2 } });
    assert.deepEqual(c.subscribedTopics, ['o', 'o.retry.1', 'o.retry.2']);
    const noPublisher = make({});
    noPublisher.handle('b', async () => {}, { retry: { mode: 'topic', maxRetries: 2 } });
    assert.deepEqual(noPublisher.subscribedTopics, ['t'], 'without a publisher, topic mode falls back to blocking');
  });

  test('start needs a handler', async () => {
    await assert.rejects(make({}).start(), /register at least one handler/);
  });
});
