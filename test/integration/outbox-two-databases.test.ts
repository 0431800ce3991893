import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';

import { Relay } from '../../src/outbox/relay.ts';
import { createEffectTable, insertEffect, uniqueId } from '../helpers/consumer-fixtures.ts';
import { freshSchema, inTransaction, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testOutbox } from '../helpers/test-outbox.ts';
import { testConsumer } from '../helpers/test-consumer.ts';

/**
 * The silent-loss case of colliding ids, end to end: two services with outboxes in two databases (two
 * schemas stand in for them), one topic, one consumer whose inbox deduplicates by message id. Every id is
 * minted in the same millisecond, the worst case for any time-based id.
 */
describe('two outboxes in two databases feeding one consumer', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let other: string;
  before(async () => {
    env = await freshSchema('zlt_two');
    other = uniqueName('zlt_two');
    await migrate(env.db, other);
    await createEffectTable(env.db, env.schema);
  });
  after(async () => {
    await env.pool.query(`drop schema if exists "${other}" cascade`);
    await env.cleanup();
  });

  test('same millisecond, same producer name: every message of both is applied, none skipped as a duplicate', async () => {
    const topic = 'orders';
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic(topic, 2);
    // One millisecond for every id, taken now: the consumer refuses messages older than its inbox remembers.
    const instant = Date.now();
    const frozen = { now: () => instant };
    const perOutbox = 100;
    for (const schema of [env.schema, other]) {
      const outbox = testOutbox({ schema, producerId: 'orders-service', clock: frozen });
      await inTransaction(env.pool, async (tx) => {
        for (let i = 0; i < perOutbox; i++) await outbox.enqueue(tx, { topic, key: `u${i % 5}`, type: 'order', payload: { n: i } });
      });
      const publisher = new TableLogPublisher(env.db, { schema: env.schema });
      assert.equal(await new Relay({ sources: new PostgresOutboxStore(env.db, { schema }), publisher }).drain(), perOutbox);
    }

    const consumer = testConsumer({
      subscriber: new TableLogSubscriber(env.db, {
        schema: env.schema,
        pollIntervalMs: 100,
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 2_000,
      }),
      db: env.db,
      schema: env.schema,
      config: { groupId: uniqueId('g-two'), topics: [topic], commitIntervalMs: 50 },
    });
    consumer.handle<{ n: number }>('order', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    await consumer.start();
    try {
      const applied = async () =>
        (await env.pool.query(`select count(distinct message_id)::int as n from "${env.schema}".effect`)).rows[0].n;
      await waitFor(async () => (await applied()) === 2 * perOutbox, { what: `all ${2 * perOutbox} messages applied` });
      const { rows } = await env.pool.query(`select count(*)::int as n from "${env.schema}".dead_letter`);
      assert.equal(rows[0].n, 0, 'nothing dead-lettered');
    } finally {
      await consumer.stop();
    }
  });
});
