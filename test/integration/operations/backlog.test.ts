import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaInspector } from '../../../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { KafkaTopicAdmin } from '../../../src/adapters/kafka/kafka-topic-admin.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { divert, forwardBacklog, undivert } from '../../../src/operations/backlog.ts';

import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/** O4: raise partitions, divert types to a standby topic, forward a backlog to a topic with more partitions. */
describe('backlog tools', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let broker: KafkaInspector;
  let store: PostgresOperationsStore;
  before(async () => {
    env = await freshSchema('zlbl');
    await createEffectTable(env.db, env.schema);
    broker = new KafkaInspector({ brokers: KAFKA_BROKERS });
    store = new PostgresOperationsStore(env.db, { schema: env.schema });
  });
  after(async () => {
    await broker.close();
    await env.cleanup();
  });

  test('partitions: raises the count', async () => {
    const topic = uniqueTopic('zl-grow');
    await createTopic(topic, 2);
    const { code, json } = await zerolossJson<{ before: number; after: number }>([
      'backlog',
      'partitions',
      topic,
      '--count',
      '5',
      '--pg',
      PG_URL,
      '--schema',
      env.schema,
      '--kafka',
      KAFKA_BROKERS.join(','),
    ]);
    assert.equal(code, 0);
    assert.deepEqual([json.before, json.after], [2, 5]);
    assert.equal((await broker.watermarks(topic))?.length, 5);
  });

  test('divert: chosen types enqueued for a topic go to the standby topic, the unsent backlog too, until undiverted', async () => {
    const topic = uniqueTopic('zl-div');
    await createTopic(topic, 2);
    const standby = `${topic}.standby`;
    const outbox = testOutbox({ schema: env.schema });
    const enqueue = (type: string) => inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: 'u1', type, payload: {} }));
    const topicOf = async (id: string) =>
      (await env.pool.query(`select topic from "${env.schema}".outbox where message_id = $1`, [id])).rows[0].topic as string;
    const waiting = await enqueue('points.bonus');

    const admin = new KafkaTopicAdmin(broker.admin);
    const r = await divert(
      { store, admin, broker },
      { topic, types: ['points.bonus'], target: standby, moveUnsent: true },
      { actor: 'ops', reason: 'peak' },
    );
    assert.equal(r.createdTarget, true);
    assert.equal(r.moved, 1);
    assert.equal((await broker.watermarks(standby))?.length, 2, 'standby created like the source');
    assert.equal(await topicOf(waiting.id), standby, 'the unsent backlog follows the rule');
    assert.equal(await topicOf((await enqueue('points.bonus')).id), standby, 'new messages of the type are diverted at enqueue');
    assert.equal(await topicOf((await enqueue('order.paid')).id), topic, 'other types are not');

    assert.deepEqual(await undivert({ store }, topic, ['points.bonus'], { actor: 'ops' }), ['points.bonus']);
    assert.equal(await topicOf((await enqueue('points.bonus')).id), topic);
    const audit = (await env.pool.query(`select action from "${env.schema}".operation_audit order by id`)).rows.map((a) => a.action);
    assert.deepEqual(audit.slice(-2), ['backlog.divert', 'backlog.undivert']);
  });

  test('forward: a backlog copied to a topic with more partitions is applied once by consumers of both topics', async () => {
    const from = uniqueTopic('zl-fwd');
    const to = `${from}.wide`;
    await createTopic(from, 1);
    const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
    const advanced = uniqueId('g-adv');
    const both = uniqueId('g-both');
    try {
      const records = Array.from({ length: 20 }, (_, i) => zlRecord({ topic: from, key: `k${i % 5}`, type: 'credit', payload: { n: i } }));
      for (const o of await publisher.publish(records)) assert.ok(o.ok);

      const admin = new KafkaTopicAdmin(broker.admin);
      const r = await forwardBacklog(
        { broker, admin, publisher, audit: (e) => store.audit(e) },
        { from, to, group: advanced, partitions: 4, advance: true },
      );
      assert.equal(r.error, undefined);
      assert.equal(r.forwarded, 20);
      assert.equal(r.created, true);
      assert.equal(r.advanced, true);
      assert.equal((await broker.watermarks(to))?.length, 4);
      const committed = await broker.committedOffsets(advanced);
      assert.deepEqual(
        committed.map((c) => [c.topic, c.offset]),
        [[from, 20n]],
        'the group skips what was forwarded',
      );

      const consumers = [advanced, both].map((group) => {
        const c = testConsumer({
          subscriber: new KafkaSubscriber({ brokers: KAFKA_BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
          db: env.db,
          schema: env.schema,
          config: { groupId: group, topics: [from, to], commitIntervalMs: 50 },
        });
        c.handle<{ n: number }>('credit', async (m, ctx) => {
          await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: group });
        });
        return c;
      });
      let duplicates = 0;
      consumers[1]?.on('processed', (e) => {
        if (e.outcome === 'duplicate') duplicates++;
      });
      await Promise.all(consumers.map((c) => c.start()));
      try {
        const effects = async (group: string) =>
          (
            await env.pool.query(
              `select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect where type = $1`,
              [group],
            )
          ).rows[0];
        await waitFor(async () => (await effects(advanced)).n === 20 && (await effects(both)).n === 20 && duplicates === 20, {
          what: 'both groups applied the backlog',
        });
        assert.deepEqual(await effects(advanced), { n: 20, d: 20 });
        assert.deepEqual(await effects(both), { n: 20, d: 20 }, 'a group reading both copies applies each message once');
      } finally {
        await Promise.all(consumers.map((c) => c.stop()));
      }
    } finally {
      await publisher.close();
    }
  });
});
