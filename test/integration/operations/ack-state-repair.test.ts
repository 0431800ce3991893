import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { KafkaInspector } from '../../../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';

import { Relay } from '../../../src/outbox/relay.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

const DYING_RELAY = fileURLToPath(new URL('../../helpers/relay-dies-after-ack.ts', import.meta.url));

/**
 * Acceptance 2 (P5): the relay dies after the broker acknowledged a batch and before it recorded the acks.
 * `reconcile` finds the pending rows' messages on the broker and marks them sent with the broker's
 * position, so no relay resends them: the topic ends with exactly one copy of each.
 */
describe('ack-vs-state repair', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let broker: KafkaInspector;
  before(async () => {
    env = await freshSchema('zlack');
    broker = new KafkaInspector({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await broker.close();
    await env.cleanup();
  });

  test('rows acked but still pending are marked sent without a resend', async () => {
    const topic = uniqueTopic('zl-ack');
    await createTopic(topic, 2);
    const since = new Date(Date.now() - 1_000).toISOString();
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < 10; i++) {
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `k${i % 3}`, type: 'credit', payload: { i } }));
    }

    const child = spawn(process.execPath, [DYING_RELAY], {
      env: { ...process.env, ZL_PG_URL: PG_URL, ZL_SCHEMA: env.schema, ZL_KAFKA_BROKERS: KAFKA_BROKERS.join(','), ZL_LEASE_MS: '1000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const [, signal] = await once(child, 'exit');
    assert.equal(signal, 'SIGKILL', `the relay died by its own kill after the ack: ${output}`);
    assert.match(output, /acked 10/);

    const copies = async () => ((await broker.watermarks(topic)) ?? []).reduce((n, m) => n + Number(m.high - m.low), 0);
    assert.equal(await copies(), 10, 'the broker holds all ten');
    const states = async () =>
      (await env.pool.query(`select state, count(*)::int as n from "${env.schema}".outbox group by state order by state`)).rows;
    assert.deepEqual(await states(), [{ state: 0, n: 10 }], 'yet every row still says pending');

    const report = await zerolossJson<ReconcileReport>([
      'reconcile',
      '--pg',
      PG_URL,
      '--schema',
      env.schema,
      '--kafka',
      KAFKA_BROKERS.join(','),
      '--since',
      since,
    ]);
    assert.equal(report.json.counts.ackedNotMarked, 10, report.stderr);
    assert.equal(report.json.ackedNotMarked.marked, true);
    assert.equal(report.json.counts.missingOnBroker, 0);
    assert.equal(report.json.verdict, 'clean');
    assert.deepEqual(await states(), [{ state: 1, n: 10 }], 'all rows repaired to sent');

    // The recorded position is where the broker holds each message.
    const { rows } = await env.pool.query(
      `select o.message_id, o.sent_partition, o.sent_offset::text, t.from_state, t.to_state, t.actor
       from "${env.schema}".outbox o join "${env.schema}".outbox_transition t using (message_id) order by o.seq_id`,
    );
    const held = new Map<string, string>();
    for await (const r of broker.read(
      (await broker.watermarks(topic))!.map((m) => ({ topic, partition: m.partition, from: m.low, to: m.high })),
    )) {
      held.set(r.headers['zl-id'] as string, `${r.partition}/${r.offset}`);
    }
    for (const r of rows) {
      assert.equal(held.get(r.message_id), `${r.sent_partition}/${r.sent_offset}`, 'recorded position = broker position');
      assert.deepEqual([r.from_state, r.to_state], [0, 1]);
      assert.match(r.actor, /^reconcile/);
    }

    // Once the dead relay's leases are over, a live relay would resend pending rows: there are none.
    await waitFor(async () => (await env.pool.query(`select 1 from "${env.schema}".outbox where lease_until > now()`)).rows.length === 0);
    const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
    try {
      const relay = new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher });
      assert.equal(await relay.drain(), 0, 'nothing left to send');
    } finally {
      await publisher.close();
    }
    assert.equal(await copies(), 10, 'no duplicate on the topic');
  });
});
