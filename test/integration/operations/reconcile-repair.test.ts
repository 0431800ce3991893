import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAdmin } from '../../../src/adapters/kafka/kafka-admin.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';

import { Relay } from '../../../src/outbox/relay.ts';
import { createEffectTable, insertEffect, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/**
 * Acceptance 1 (O2, O5): records deleted from the topic before any consumer read them are named exactly by
 * `reconcile`; `reconcile --repair` re-publishes them from the outbox and the consumers apply each once; a
 * second `reconcile` is clean.
 */
describe('reconcile finds messages the broker lost and repairs them', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zlops');
    await createEffectTable(env.db, env.schema);
    publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 5_000 });
  });
  after(async () => {
    await publisher.close();
    await env.cleanup();
  });

  test('names exactly the deleted ids, --repair makes the consumers apply them once, the next run is clean', async () => {
    const topic = uniqueTopic('zl-recon');
    await createTopic(topic, 3);
    const since = new Date(Date.now() - 1_000).toISOString();
    const outbox = testOutbox({ schema: env.schema, producerId: 'recon-test' });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const e = await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `k${i % 6}`, type: 'credit', payload: { n: i } }));
      ids.push(e.id);
    }
    const relay = new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher });
    assert.equal(await relay.drain(), 30);

    // The broker loses the head of two partitions (as retention or a disk failure would) before anyone reads it.
    const { rows } = await env.pool.query(
      `select message_id from "${env.schema}".outbox where sent_partition in (0, 1) and sent_offset < 3 order by message_id`,
    );
    const lost = rows.map((r) => r.message_id as string);
    assert.ok(lost.length >= 2, 'some messages fall in the deleted range');
    const admin = createAdmin(KAFKA_BROKERS);
    try {
      await admin.deleteRecords({
        topics: [
          {
            name: topic,
            partitions: [
              { partition: 0, offset: 3n },
              { partition: 1, offset: 3n },
            ],
          },
        ],
      });
    } finally {
      await admin.close();
    }

    const group = uniqueId('g-recon');
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: KAFKA_BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db: env.db,
      schema: env.schema,
      config: { groupId: group, topics: [topic], commitIntervalMs: 50 },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) => {
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
    });
    await consumer.start();
    try {
      const effects = async () =>
        (await env.pool.query(`select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect`)).rows[0];
      await waitFor(async () => (await effects()).n === 30 - lost.length, { what: 'the surviving messages applied' });
      // Committed offsets reach the end, so nothing is merely in flight any more.
      await waitFor(async () => (await consumer.metrics()).zeroloss_consumer_processed_total === 30 - lost.length);

      const common = ['--pg', PG_URL, '--schema', env.schema, '--kafka', KAFKA_BROKERS.join(','), '--since', since, '--group', group];
      const first = await waitFor(
        async () => {
          const r = await zerolossJson<ReconcileReport>(['reconcile', ...common, '--until', new Date().toISOString()]);
          // The group's commit of its last offsets may trail the effects by one commit interval.
          return r.json.groups[0]?.inFlight === 0 ? r : undefined;
        },
        { what: 'a reconcile run with nothing in flight' },
      );
      assert.equal(first.code, 1, first.stderr);
      assert.equal(first.json.verdict, 'gaps');
      assert.equal(first.json.counts.committed, 30);
      assert.deepEqual([...first.json.missing.broker].sort(), lost, 'exactly the deleted ids are missing on the broker');
      assert.deepEqual([...(first.json.missing.groups[group] ?? [])].sort(), lost, 'and in the consumer group');
      assert.equal(first.json.counts.duplicatedOnBroker, 0);

      const repaired = await zerolossJson<ReconcileReport>(['reconcile', ...common, '--until', new Date().toISOString(), '--repair']);
      assert.equal(repaired.json.verdict, 'repaired', JSON.stringify(repaired.json.repair) + repaired.stderr);
      assert.deepEqual([...(repaired.json.repair?.resent ?? [])].sort(), lost);

      await waitFor(async () => (await effects()).n === 30, { what: 'the re-published messages applied' });
      assert.deepEqual(await effects(), { n: 30, d: 30 }, 'every message applied exactly once');

      const second = await waitFor(
        async () => {
          const r = await zerolossJson<ReconcileReport>(['reconcile', ...common, '--until', new Date().toISOString()]);
          return r.json.verdict !== 'in-flight' ? r : undefined;
        },
        { what: 'a settled reconcile run' },
      );
      assert.equal(second.json.verdict, 'clean', JSON.stringify(second.json, null, 2));
      assert.equal(second.code, 0);
      const { rows: audit } = await env.pool.query(
        `select count(*)::int as n from "${env.schema}".operation_audit where action = 'outbox.resend'`,
      );
      assert.equal(audit[0].n, lost.length, 'each resend audited');
    } finally {
      await consumer.stop();
    }
  });
});
