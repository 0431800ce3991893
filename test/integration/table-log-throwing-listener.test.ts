import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import { freshSchema } from '../helpers/pg.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * A subscriber reports its background trouble as 'error' events and to onError, from inside its member's
 * loop. Listeners that threw there ended the loop: the heartbeat kept the partitions, and nobody read them.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zltl');
});
after(async () => {
  await env.cleanup();
});

test("table log: an 'error' listener and an onError that throw do not stop the subscription", async () => {
  await new TableLogAdmin(env.db, { schema: env.schema }).createTopic('hooks', 1);
  const publisher = new TableLogPublisher(env.db, { schema: env.schema });
  const subscriber = new TableLogSubscriber(env.db, { schema: env.schema, ...FAST_GROUP });
  subscriber.on('error', () => {
    throw new Error('the error listener broke (test)');
  });
  let delivered = 0;
  let failedOnce = false;
  const subscription = await subscriber.subscribe({
    groupId: 'g-hooks',
    topics: ['hooks'],
    // The first batch is refused: an error inside the loop, reported to both hooks.
    onRecords: (batch) => {
      if (!failedOnce) {
        failedOnce = true;
        throw new Error('not now (test)');
      }
      delivered += batch.records.length;
    },
    onError: () => {
      throw new Error('onError broke too (test)');
    },
  });
  try {
    for (const o of await publisher.publish([{ topic: 'hooks', key: 'k', value: Buffer.from('1'), headers: {} }])) assert.ok(o.ok);
    await waitFor(() => failedOnce, { what: 'the first delivery refused' });
    for (const o of await publisher.publish([{ topic: 'hooks', key: 'k', value: Buffer.from('2'), headers: {} }])) assert.ok(o.ok);
    await waitFor(() => delivered === 2, { what: 'both records delivered after the refusal', timeoutMs: 10_000 });
  } finally {
    await subscription.close();
  }
});
