import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../../src/adapters/table-log/table-log-subscriber.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';
import type { MessageTrace } from '../../../src/operations/trace.ts';

import { Relay } from '../../../src/outbox/relay.ts';
import { createEffectTable, insertEffect, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/** B4 + O2/O3: reconcile, repair and trace work the same on the embedded table log, without Kafka. */
describe('operations on the embedded table log', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zltlops');
    await createEffectTable(env.db, env.schema);
  });
  after(async () => {
    await env.cleanup();
  });

  test('reconcile --table-log names records deleted from the log, --repair restores them, trace follows a message', async () => {
    const topic = 'points';
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic(topic, 2);
    const since = new Date(Date.now() - 1_000).toISOString();
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < 12; i++)
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `u${i % 4}`, type: 'credit', payload: { n: i } }));
    const publisher = new TableLogPublisher(env.db, { schema: env.schema });
    assert.equal(await new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher }).drain(), 12);
    const lost = (
      await env.pool.query(
        `delete from "${env.schema}".log_record where partition = 0 and log_offset < 2 returning headers->>'zl-id' as id`,
      )
    ).rows
      .map((r) => r.id as string)
      .sort();
    assert.equal(lost.length, 2);

    const group = uniqueId('g-tl');
    const consumer = testConsumer({
      subscriber: new TableLogSubscriber(env.db, {
        schema: env.schema,
        pollIntervalMs: 100,
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 2_000,
      }),
      db: env.db,
      schema: env.schema,
      config: { groupId: group, topics: [topic], commitIntervalMs: 50 },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    await consumer.start();
    try {
      const applied = async () => (await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`)).rows[0].n as number;
      await waitFor(async () => (await applied()) === 10, { what: 'the surviving records applied' });
      const conn = ['--pg', PG_URL, '--schema', env.schema, '--table-log', '--since', since, '--group', group];
      const first = await waitFor(async () => {
        const r = await zerolossJson<ReconcileReport>(['reconcile', ...conn]);
        return r.json.groups[0]?.inFlight === 0 ? r : undefined;
      });
      assert.equal(first.json.verdict, 'gaps');
      assert.deepEqual([...first.json.missing.broker].sort(), lost);
      assert.deepEqual([...(first.json.missing.groups[group] ?? [])].sort(), lost);

      const repaired = await zerolossJson<ReconcileReport>(['reconcile', ...conn, '--repair']);
      assert.equal(repaired.json.verdict, 'repaired');
      await waitFor(async () => (await applied()) === 12, { what: 'the restored records applied' });
      const clean = await waitFor(async () => {
        const r = await zerolossJson<ReconcileReport>(['reconcile', ...conn]);
        return r.json.verdict !== 'in-flight' ? r : undefined;
      });
      assert.equal(clean.json.verdict, 'clean');

      const t = await zerolossJson<MessageTrace>(['trace', lost[0] as string, '--pg', PG_URL, '--schema', env.schema, '--table-log']);
      assert.equal(t.json.stop.stage, 'complete');
      assert.deepEqual(
        t.json.transitions.map((x) => [x.from, x.to]),
        [
          [0, 1],
          [1, 1],
        ],
        'sent, then re-published',
      );
      assert.equal(t.json.broker?.recorded?.check, 'found');
    } finally {
      await consumer.stop();
    }
  });
});
