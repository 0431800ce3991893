import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Database } from '../../../src/ports/sql-executor.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

const db = { query: async () => ({ rows: [] }) } as unknown as Database;

test('a consumer whose start fails leaves no probe server behind', async () => {
  const port = await freePort();
  const consumer = testConsumer({
    subscriber: {
      subscribe: async () => {
        throw new Error('broker refused the group');
      },
    },
    db,
    config: { groupId: 'g', topics: ['t'] },
    health: { host: '127.0.0.1', port },
  });
  consumer.handle('x', async () => {});
  await assert.rejects(consumer.start(), /broker refused the group/);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'nothing listens on the port any more');
  assert.equal(consumer.health().endpoint, undefined);
});
