import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import { PermanentError } from '../../../src/core/errors.ts';
import type { MessageTrace } from '../../../src/operations/trace.ts';

import { Relay } from '../../../src/outbox/relay.ts';
import { uniqueId } from '../../helpers/consumer-fixtures.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zeroloss, zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/** Acceptance 3 (O3): `trace` on a delivered, a dead-lettered and a never-sent message. */
describe('trace', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zltrace');
    publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 5_000 });
  });
  after(async () => {
    await publisher.close();
    await env.cleanup();
  });

  test('prints each trail and where it stops', async () => {
    const topic = uniqueTopic('zl-trace');
    const tiny = uniqueTopic('zl-trace-tiny');
    await createTopic(topic, 2);
    await createTopic(`${topic}.dlq`, 2);
    await createTopic(tiny, 1, { 'max.message.bytes': '2048' });
    const outbox = testOutbox({ schema: env.schema });
    const [delivered, dead] = await inTransaction(env.pool, async (tx) => [
      (await outbox.enqueue(tx, { topic, key: 'order-1', type: 'credit', payload: { points: 100 } })).id,
      (await outbox.enqueue(tx, { topic, key: 'order-2', type: 'boom', payload: { points: -1 } })).id,
    ]);
    const relay = new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher });
    await relay.drain();
    // Sent on its own: a rejected record in a batch makes the publisher resend the batch's others one by one.
    const neverSent = (
      await inTransaction(env.pool, (tx) =>
        outbox.enqueue(tx, { topic: tiny, key: 'order-3', type: 'credit', payload: 'x'.repeat(10_000) }),
      )
    ).id;
    await relay.drain();

    const group = uniqueId('g-trace');
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: KAFKA_BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: group, topics: [topic], commitIntervalMs: 50 },
    });
    consumer.handle('credit', async () => {});
    consumer.handle('boom', async () => {
      throw new PermanentError('points cannot be negative');
    });
    await consumer.start();
    try {
      await waitFor(
        async () =>
          (await env.pool.query(`select 1 from "${env.schema}".inbox where message_id = $1`, [delivered])).rows.length === 1 &&
          (await env.pool.query(`select 1 from "${env.schema}".dead_letter where message_id = $1 and published_at is not null`, [dead]))
            .rows.length === 1,
        { what: 'one applied, one dead-lettered' },
      );
    } finally {
      await consumer.stop();
    }
    const conn = ['--pg', PG_URL, '--schema', env.schema, '--kafka', KAFKA_BROKERS.join(',')];

    const a = await zerolossJson<MessageTrace>(['trace', delivered, ...conn]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.json.stop.stage, 'complete');
    assert.equal(a.json.outbox?.stateName, 'sent');
    assert.deepEqual(
      a.json.transitions.map((t) => [t.from, t.to]),
      [[0, 1]],
    );
    assert.equal(a.json.broker?.recorded?.check, 'found', 'the recorded position holds this message');
    assert.deepEqual(
      a.json.broker?.copies.map((c) => c.kind),
      ['main'],
    );
    assert.equal(a.json.groups.length, 1);
    assert.equal(a.json.groups[0]?.status, 'applied');
    assert.equal(a.json.groups[0]?.applied?.offset, a.json.outbox?.sentOffset);
    for (const stage of ['outbox', 'relay', 'broker', 'consumer']) {
      assert.ok(
        a.json.steps.some((s) => s.stage === stage),
        `the life shows the ${stage} step`,
      );
    }
    assert.equal(a.json.steps[0]?.stage, 'outbox', 'and starts with the commit');

    const b = await zerolossJson<MessageTrace>(['trace', dead, ...conn]);
    assert.equal(b.code, 1);
    assert.equal(b.json.stop.stage, 'consumer');
    assert.match(b.json.stop.reason, /dead-lettered.*points cannot be negative/);
    assert.equal(b.json.groups[0]?.status, 'dead-lettered');
    assert.equal(b.json.groups[0]?.deadLetters[0]?.errorCode, 'ZL_PERMANENT');
    assert.deepEqual(b.json.broker?.copies.map((c) => c.kind).sort(), ['dlq', 'main'], 'the original and its dead-letter copy');

    const c = await zerolossJson<MessageTrace>(['trace', neverSent, ...conn]);
    assert.equal(c.code, 1);
    assert.equal(c.json.stop.stage, 'relay');
    assert.match(c.json.stop.reason, /parked after 1 attempt/);
    assert.equal(c.json.outbox?.stateName, 'parked');
    assert.equal(c.json.broker?.copies.length, 0, 'never reached the broker');
    assert.deepEqual(
      c.json.transitions.map((t) => [t.from, t.to]),
      [[0, 3]],
    );
    assert.match(c.json.transitions[0]?.error ?? '', /TOO_LARGE/);

    const unknown = await zerolossJson<MessageTrace>(['trace', '999999999999999999', ...conn]);
    assert.equal(unknown.json.stop.stage, 'outbox');
    assert.match(unknown.json.stop.reason, /no trace/);

    const text = await zeroloss(['trace', delivered, ...conn]);
    assert.match(text.stdout, new RegExp(`message ${delivered}`));
    assert.match(text.stdout, /group +\S+: applied/);
    assert.match(text.stdout, /trail ends at complete: applied by/);
  });
});
