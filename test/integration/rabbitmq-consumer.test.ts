import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { Consumer } from '../../src/consumer/consumer.ts';
import { RetryableError } from '../../src/core/errors.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../helpers/consumer-fixtures.ts';
import { freshSchema } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/**
 * The consumer runtime unchanged over RabbitMQ streams (the test the table log passes): duplicates, a bad
 * record, a retry-topic round trip and a second member joining the group mid-run.
 */
describe('consumer over RabbitMQ streams', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  const consumers: Consumer[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
  });
  after(async () => {
    for (const c of consumers) await c.stop();
    for (const cleanup of cleanups) await cleanup();
    await env.cleanup();
  });

  test('each effect once, in key order; bad input dead-lettered; retry topic used', async () => {
    const topic = `zl-it-${randomBytes(4).toString('hex')}-orders`;
    const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
    const topics = [topic, `${topic}.dlq`, `${topic}.retry.1`];
    for (const t of topics) await admin.createTopic(t, 4);
    const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
    const groupId = uniqueId('g');
    cleanups.push(async () => {
      await publisher.close();
      for (const t of topics) {
        await admin.deleteTopic(t);
        await admin.deleteGroupOffsets(groupId, t, 4);
      }
      await admin.close();
    });
    let flaky = true;
    const make = () => {
      const consumer = new Consumer({
        subscriber: new RabbitMqSubscriber({
          url: RABBITMQ_URL,
          heartbeatIntervalMs: 200,
          sessionTimeoutMs: 2_000,
          offsetRetentionMs: 600_000,
        }),
        db: env.db,
        publisher,
        config: { groupId, topics: [topic], schema: env.schema, commitIntervalMs: 50 },
      });
      consumer.handle<{ n: number }>('credit', async (m, ctx) =>
        insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
      );
      consumer.handle<{ n: number }>(
        'flaky',
        async (m, ctx) => {
          if (flaky) {
            flaky = false;
            throw new RetryableError('first try fails');
          }
          await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
        },
        { retry: { mode: 'topic', maxRetries: 1, delayMs: 50 } },
      );
      consumers.push(consumer);
      return consumer;
    };
    await make().start();

    const records = [];
    for (let n = 1; n <= 40; n++)
      for (let k = 0; k < 10; k++) records.push(zlRecord({ topic, key: `k${k}`, type: 'credit', payload: { n } }));
    const firstHalf = records.slice(0, 200);
    const secondHalf = records.slice(200);
    for (const o of await publisher.publish([...firstHalf, firstHalf[7] as (typeof records)[number]])) assert.ok(o.ok);
    await waitFor(async () => ((await consumers[0]?.metrics())?.zeroloss_consumer_processed_total ?? 0) >= 50, { what: 'first effects' });
    await make().start();
    const bad = { ...zlRecord({ topic, key: 'k0', type: 'credit', payload: {} }), value: Buffer.from('{oops') };
    const flakyRecord = zlRecord({ topic, key: 'f', type: 'flaky', payload: { n: 1 } });
    for (const o of await publisher.publish([...secondHalf, bad, flakyRecord, secondHalf[3] as (typeof records)[number]])) assert.ok(o.ok);

    await waitFor(async () => (await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`)).rows[0].n === 401, {
      what: '400 credits and the flaky message applied',
      timeoutMs: 60_000,
    });
    const { rows } = await env.pool.query(
      `select msg_key, array_agg(n order by id) as ns, count(distinct message_id)::int as d, count(*)::int as c
       from "${env.schema}".effect where type = 'credit' group by msg_key`,
    );
    assert.equal(rows.length, 10);
    for (const r of rows) {
      assert.deepEqual(
        r.ns,
        Array.from({ length: 40 }, (_, i) => i + 1),
        `key ${r.msg_key} in order`,
      );
      assert.equal(r.c, r.d, `key ${r.msg_key}: no effect twice`);
    }
    const dead = await env.pool.query(`select error_code, error from "${env.schema}".dead_letter`);
    assert.equal(dead.rows.length, 1);
    assert.match(dead.rows[0].error, /not valid JSON/);
    // A stream does not count its messages on a passive declare: read the retry topic with a group of its own.
    const witnessGroup = uniqueId('witness');
    const retried: string[] = [];
    const witness = await new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 }).subscribe({
      groupId: witnessGroup,
      topics: [`${topic}.retry.1`],
      onRecords: (batch) => retried.push(...batch.records.map((r) => r.key)),
    });
    cleanups.unshift(async () => {
      await witness.close();
      await admin.deleteGroupOffsets(witnessGroup, `${topic}.retry.1`, 4);
    });
    await waitFor(() => retried.length > 0, { what: 'the flaky message on the retry topic' });
    assert.deepEqual(retried, ['f'], 'the flaky message went through the retry topic, once');
  });
});
