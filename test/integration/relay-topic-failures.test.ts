import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaInspector } from '../../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOperationsStore } from '../../src/adapters/postgres/postgres-operations-store.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { status } from '../../src/operations/status.ts';

import { Relay } from '../../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, readTopic, uniqueTopic } from '../helpers/kafka.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

describe('relay: a topic the broker does not have', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  let inspector: KafkaInspector;
  before(async () => {
    env = await freshSchema('zltopic');
    publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 10_000 });
    inspector = new KafkaInspector({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await publisher.close();
    await inspector.close();
    await env.cleanup();
  });

  test('stops only its own rows: the others flow, its rows wait uncharged and unparked with an alarm, and flow once it exists', async (t) => {
    const missing = uniqueTopic('zl-missing');
    const existing = uniqueTopic('zl-present');
    await createTopic(existing, 3);
    const outbox = testOutbox({ schema: env.schema });
    // The missing topic's rows come first, so every claim of the backlog holds some of them.
    await inTransaction(env.pool, async (tx) => {
      for (let i = 0; i < 50; i++) await outbox.enqueue(tx, { topic: missing, key: `m-${i}`, type: 'x', payload: { i } });
      for (let i = 0; i < 300; i++) await outbox.enqueue(tx, { topic: existing, key: `k-${i % 40}`, type: 'x', payload: { i } });
    });
    const relay = new Relay({
      sources: new PostgresOutboxStore(env.db, { schema: env.schema }),
      publisher,
      config: { batchSize: 100, backoff: { baseMs: 200, maxMs: 1_000, jitter: 0 }, backlogIntervalMs: 100, minIntervalMs: 10 },
    });
    const started = Date.now();
    await relay.start();
    try {
      const arrived = await readTopic(existing, { done: (rs) => rs.length >= 300, timeoutMs: 20_000 });
      assert.equal(arrived.length, 300, 'every record for the existing topic arrives');
      t.diagnostic(`300 records of the existing topic arrived in ${Date.now() - started} ms`);

      const waiting = await waitFor(
        async () => {
          const { rows } = await env.pool.query<{ state: number; attempts: number; last_error: string | null; later: boolean }>(
            `select state, attempts, last_error, next_attempt_at > now() as later from "${env.schema}".outbox where topic = $1`,
            [missing],
          );
          // One snapshot between rounds: all failed, none held by a claim in flight (a claim counts its attempt
          // until the outcome takes it back), and some scheduled later. A snapshot taken just as the rows fell
          // due, before the next claim, shows none later; that is timing, not a missing backoff.
          const settled = rows.length === 50 && rows.every((r) => r.state === 2 && r.attempts === 0);
          return settled && rows.some((r) => r.later) ? rows : undefined;
        },
        { what: 'every row of the missing topic marked failed, uncharged, backing off', timeoutMs: 10_000 },
      );
      assert.ok(
        waiting.every((r) => r.attempts === 0),
        `not charged as attempts: ${[...new Set(waiting.map((r) => r.attempts))].join(',')}`,
      );
      assert.match(waiting[0]?.last_error ?? '', /ZL_TOPIC_UNAVAILABLE/);
      assert.ok(
        waiting.some((r) => r.later),
        'the rows back off instead of being claimed again at once',
      );
      const { rows: parked } = await env.pool.query(`select 1 from "${env.schema}".outbox where state = 3`);
      assert.equal(parked.length, 0, 'nothing parked');

      const metrics = await relay.registry.getSingleMetric('zeroloss_relay_topic_unavailable')?.get();
      const gauge = metrics?.values.find((v) => v.labels.topic === missing);
      assert.ok(gauge && gauge.value > 0, `the gauge names the missing topic: ${JSON.stringify(metrics?.values)}`);

      const report = await status({ store: new PostgresOperationsStore(env.db, { schema: env.schema }), broker: inspector });
      const alarm = report.unavailableTopics.find((t) => t.topic === missing);
      assert.equal(alarm?.waiting, 50, `status names the topic and its rows: ${JSON.stringify(report.unavailableTopics)}`);
      assert.equal(alarm?.reason, 'missing');
      assert.ok(
        report.warnings.some((w) => w.includes(missing) && w.includes('zeroloss topics ensure')),
        `status says how to create it: ${report.warnings.join(' | ')}`,
      );

      await createTopic(missing, 2);
      const created = Date.now();
      const late = await readTopic(missing, { done: (rs) => rs.length >= 50, timeoutMs: 30_000 });
      assert.equal(late.length, 50, 'the waiting rows flow once the topic exists, without a release');
      t.diagnostic(`the 50 waiting records arrived ${Date.now() - created} ms after the topic was created`);
      await waitFor(
        async () => {
          const values = (await relay.registry.getSingleMetric('zeroloss_relay_topic_unavailable')?.get())?.values ?? [];
          return (values.find((v) => v.labels.topic === missing)?.value ?? 0) === 0;
        },
        { what: 'the gauge to clear once the topic takes records', timeoutMs: 5_000 },
      );
      const after = await status({ store: new PostgresOperationsStore(env.db, { schema: env.schema }), broker: inspector });
      assert.equal(after.unavailableTopics.length, 0);
    } finally {
      await relay.stop();
    }
  });
});
