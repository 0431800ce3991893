import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import type { SequenceEvent } from '../../../src/consumer/gap-detector.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

const subscriberConfig = {
  brokers: BROKERS,
  sessionTimeoutMs: 6_000,
  heartbeatIntervalMs: 500,
  rebalanceTimeoutMs: 20_000,
  maxWaitMs: 100,
};

describe('consumer over Kafka and Postgres', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    publisher = new KafkaPublisher({ brokers: BROKERS });
  });
  after(async () => {
    await publisher.close();
    await env.cleanup();
  });

  test('applies each message once, in key order, skips duplicates on the topic and reports them as sequence repeats', async () => {
    const topic = uniqueId('zl-basic');
    await createTopics(topicFamily(topic), 3);
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const records = [];
    for (let n = 1; n <= 30; n++) {
      for (const key of keys) records.push(zlRecord({ topic, key, type: 'credit', payload: { n }, seq: n, producerId: 'p1' }));
    }
    const duplicates = [records[3], records[50], records[51], records[200]].map((r) => ({ ...r, headers: { ...r?.headers } }));
    for (const outcome of await publisher.publish([...records, ...(duplicates as typeof records)])) assert.ok(outcome.ok);

    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50 },
    });
    const repeats: SequenceEvent[] = [];
    consumer.on('sequence-duplicate', (e) => repeats.push(e));
    consumer.handle<{ n: number }>('credit', async (m, ctx) => {
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
    });
    await consumer.start();
    try {
      await waitFor(
        async () => {
          const m = await consumer.metrics();
          return m.zeroloss_consumer_processed_total === 300 && m.zeroloss_consumer_duplicates_total === 4;
        },
        { what: '300 applied and four duplicates skipped' },
      );
      const { rows } = await env.pool.query(`select msg_key, n from "${env.schema}".effect order by id`);
      assert.equal(rows.length, 300);
      for (const key of keys) {
        const ns = rows.filter((r) => r.msg_key === key).map((r) => r.n);
        assert.deepEqual(
          ns,
          Array.from({ length: 30 }, (_, i) => i + 1),
          `key ${key} applied in publish order`,
        );
      }
      const metrics = await consumer.metrics();
      assert.equal(metrics.zeroloss_consumer_processed_total, 300);
      assert.equal(repeats.length, 4, 'each injected duplicate shows as a repeated producer sequence');
      assert.equal(metrics.zeroloss_consumer_sequence_gaps_total ?? 0, 0);
      // O1: latency histograms and lag per partition.
      assert.equal(metrics.zeroloss_consumer_end_to_end_seconds_count, 300);
      assert.ok((metrics.zeroloss_consumer_end_to_end_seconds_sum ?? 0) > 0);
      assert.equal(metrics.zeroloss_consumer_handler_seconds_count, 304, 'one effect transaction per delivery, duplicates included');
      await waitFor(async () => (await consumer.metrics()).zeroloss_consumer_lag === 0, { what: 'lag 0 once everything is committed' });
      const lag = await consumer.registry.getSingleMetric('zeroloss_consumer_lag')?.get();
      assert.equal(lag?.values.filter((v) => v.labels.topic === topic).length, 3, 'lag reported per partition');
    } finally {
      await consumer.stop();
    }
  });

  test('an idempotency key derived from the payload (order id + status) dedups different messages; a sequence gap is reported', async () => {
    const topic = uniqueId('zl-key');
    await createTopics(topicFamily(topic), 2);
    const order = (orderId: string, status: string, seq: number) =>
      zlRecord({ topic, key: orderId, type: 'order-status', payload: { orderId, status }, seq, producerId: 'orders-svc' });
    // Each record has its own message id; o-1 PAID arrives twice as different messages. o-2 skips seq 2.
    const records = [
      order('o-1', 'PAID', 1),
      order('o-1', 'PAID', 2),
      order('o-1', 'SHIPPED', 3),
      order('o-2', 'PAID', 1),
      order('o-2', 'SHIPPED', 3),
    ];
    for (const outcome of await publisher.publish(records)) assert.ok(outcome.ok);
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50 },
    });
    const gaps: SequenceEvent[] = [];
    consumer.on('sequence-gap', (e) => gaps.push(e));
    consumer.handle<{ orderId: string; status: string }>(
      'order-status',
      async (m, ctx) => insertEffect(ctx.tx, env.schema, { id: m.id, key: `${m.payload.orderId}:${m.payload.status}`, n: 0, type: m.type }),
      { idempotencyKey: (m) => `${m.payload.orderId}:${m.payload.status}` },
    );
    await consumer.start();
    try {
      await waitFor(
        async () => {
          const m = await consumer.metrics();
          return m.zeroloss_consumer_processed_total === 4 && m.zeroloss_consumer_duplicates_total === 1;
        },
        { what: 'four applied, one duplicate by payload key' },
      );
      const { rows } = await env.pool.query(`select msg_key from "${env.schema}".effect where type = 'order-status' order by msg_key`);
      assert.deepEqual(
        rows.map((r) => r.msg_key),
        ['o-1:PAID', 'o-1:SHIPPED', 'o-2:PAID', 'o-2:SHIPPED'],
      );
      assert.equal(gaps.length, 1);
      assert.deepEqual(
        [gaps[0]?.producerId, gaps[0]?.key, gaps[0]?.expected, gaps[0]?.received, gaps[0]?.missing],
        ['orders-svc', 'o-2', 2, 3, 1],
      );
      const metrics = await consumer.metrics();
      assert.equal(metrics.zeroloss_consumer_sequence_missing_total, 1);
    } finally {
      await consumer.stop();
    }
  });

  test('inbox rows older than the retention are deleted; newer ones and other groups are kept', async () => {
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      schema: env.schema,
      config: {
        groupId: 'cleanup-group',
        topics: ['unused'],
        inbox: { retentionMs: 3_600_000, replayHorizonMs: 60_000 },
      },
    });
    const insert = `insert into "${env.schema}".inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, processed_at)
      values ($1, $2, $2, 't', 0, 0, now() - $3 * interval '1 minute')`;
    await env.pool.query(insert, ['cleanup-group', 'old-1', 120]);
    await env.pool.query(insert, ['cleanup-group', 'old-2', 61]);
    await env.pool.query(insert, ['cleanup-group', 'fresh', 59]);
    await env.pool.query(insert, ['other-group', 'old-other', 120]);
    assert.equal(await consumer.cleanupInbox(), 2);
    const { rows } = await env.pool.query(
      `select idempotency_key from "${env.schema}".inbox where idempotency_key in ('old-1','old-2','fresh','old-other') order by 1`,
    );
    assert.deepEqual(
      rows.map((r) => r.idempotency_key),
      ['fresh', 'old-other'],
    );
  });
});
