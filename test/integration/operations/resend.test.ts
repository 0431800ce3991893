import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAdmin } from '../../../src/adapters/kafka/kafka-admin.ts';
import { KafkaInspector } from '../../../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';
import type { ResendResult } from '../../../src/operations/resend.ts';

import { Relay } from '../../../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

/** O5: after the broker lost a range, resend re-publishes it from the outbox; large repairs need confirmation. */
describe('resend', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let broker: KafkaInspector;
  before(async () => {
    env = await freshSchema('zlres');
    broker = new KafkaInspector({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await broker.close();
    await env.cleanup();
  });

  test('re-publishes a time range byte for byte, skips unsent rows, records the new positions', async () => {
    const topic = uniqueTopic('zl-resend');
    await createTopic(topic, 1);
    const since = new Date(Date.now() - 1_000).toISOString();
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < 5; i++)
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `k${i}`, type: 'x', payload: { i } }));
    const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
    try {
      assert.equal(await new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher }).drain(), 5);
    } finally {
      await publisher.close();
    }
    const pending = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: 'later', type: 'x', payload: 'not sent' }))).id;
    const admin = createAdmin(KAFKA_BROKERS);
    try {
      await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 5n }] }] });
    } finally {
      await admin.close();
    }
    const conn = ['--pg', PG_URL, '--schema', env.schema, '--kafka', KAFKA_BROKERS.join(',')];

    // Reconciliation finds five missing; the automatic repair limit holds them back until confirmed.
    const held = await zerolossJson<ReconcileReport>(['reconcile', ...conn, '--since', since, '--repair', '--max-auto-repair', '2']);
    assert.equal(held.json.counts.missingOnBroker, 5);
    assert.equal(held.json.verdict, 'gaps');
    assert.match(held.json.repair?.skipped ?? '', /exceed the automatic repair limit of 2/);

    const dry = await zerolossJson<ResendResult>(['resend', ...conn, '--since', since, '--dry-run']);
    assert.equal(dry.json.resent.length, 5);
    assert.equal((await broker.watermarks(topic))?.[0]?.high, 5n, 'a dry run sends nothing');

    const done = await zerolossJson<ResendResult>([
      'resend',
      ...conn,
      '--since',
      since,
      '--reason',
      'broker disk lost',
      '--actor',
      'carol',
    ]);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.json.resent.length, 5);
    assert.deepEqual(done.json.skipped, [{ messageId: pending, reason: 'not sent yet: the relay sends it' }]);
    const marks = (await broker.watermarks(topic))?.[0];
    assert.deepEqual([marks?.low, marks?.high], [5n, 10n], 'five copies appended after the deleted range');

    const { rows } = await env.pool.query(
      `select o.message_id, o.sent_offset::int as off, o.payload, t.actor from "${env.schema}".outbox o
       join "${env.schema}".outbox_transition t on t.message_id = o.message_id and t.from_state = 1 and t.to_state = 1
       order by o.seq_id`,
    );
    assert.deepEqual(
      rows.map((r) => r.off),
      [5, 6, 7, 8, 9],
      'new positions recorded, in commit order',
    );
    assert.ok(rows.every((r) => r.actor === 'resend:carol'));
    const copies = [];
    for await (const r of broker.read([{ topic, partition: 0, from: 5n, to: 10n }])) copies.push(r);
    assert.deepEqual(
      copies.map((c) => c.value.toString()),
      rows.map((r) => Buffer.from(r.payload).toString()),
      'the original bytes',
    );

    const unknown = await zerolossJson<ResendResult>(['resend', ...conn, '--ids', `${rows[0].message_id},no-such-id`]);
    assert.equal(unknown.code, 1);
    assert.deepEqual(unknown.json.notFound, ['no-such-id']);
    const clean = await zerolossJson<ReconcileReport>(['reconcile', ...conn, '--since', since]);
    assert.equal(clean.json.counts.missingOnBroker, 0);
    assert.equal(clean.json.counts.duplicatedOnBroker, 1, 'the id resent twice is on the topic twice');
  });
});
