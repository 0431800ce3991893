import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { createEffectTable, insertEffect, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { tableLogConsumer } from '../../helpers/table-log-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * The consumer's events are the application's hooks (metrics, alerts, audit): a listener that throws is the
 * application's bug, and it must not become the consumer's. Node's EventEmitter throws a listener's error
 * out of emit(), inside whatever stage emitted it: a dead letter written and then failed, a revoke left
 * half done, a commit's bookkeeping skipped.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zll');
  await createEffectTable(env.db, env.schema);
});
after(async () => {
  await env.cleanup();
});

test('listeners that throw are reported as errors; every record is still applied once, dead-lettered or committed', async () => {
  const topic = 'hooks';
  const admin = new TableLogAdmin(env.db, { schema: env.schema });
  for (const t of [topic, `${topic}.dlq`]) await admin.createTopic(t, 2);
  const publisher = new TableLogPublisher(env.db, { schema: env.schema });
  let consumer: Consumer | undefined;
  try {
    consumer = tableLogConsumer(env, { groupId: 'hooks', topics: [topic] });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    const thrown = new Set<string>();
    for (const event of ['assigned', 'processed', 'dead-letter', 'committed'] as const) {
      consumer.on(event, () => {
        thrown.add(event);
        throw new Error(`listener of ${event} broke (test)`);
      });
    }
    const errors: Error[] = [];
    consumer.on('error', (error) => errors.push(error));
    await consumer.start();
    const records = Array.from({ length: 20 }, (_, n) => zlRecord({ topic, key: `k${n % 4}`, type: 'credit', payload: { n } }));
    const bad = { ...zlRecord({ topic, key: 'k0', type: 'credit', payload: {} }), value: Buffer.from('{oops') };
    for (const o of await publisher.publish([...records.slice(0, 10), bad, ...records.slice(10)])) assert.ok(o.ok);
    await waitFor(
      async () =>
        (await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`)).rows[0].n === 20 &&
        (await env.pool.query(`select count(*)::int as n from "${env.schema}".dead_letter`)).rows[0].n === 1,
      { what: '20 effects and 1 dead letter', timeoutMs: 20_000 },
    );
    // Everything committed: the group's offsets reach the end of both partitions.
    const ends = await admin.endOffsets(topic);
    await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `select partition, committed_offset::text as o from "${env.schema}".log_group_offset where group_id = 'hooks' and topic = '${topic}'`,
        );
        return ends.every((e) => rows.some((r) => r.partition === e.partition && BigInt(r.o) === e.high));
      },
      { what: 'offsets committed to the end', timeoutMs: 10_000 },
    );
    const { rows } = await env.pool.query(`select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect`);
    assert.deepEqual(rows[0], { n: 20, d: 20 });
    assert.deepEqual([...thrown].sort(), ['assigned', 'committed', 'dead-letter', 'processed']);
    for (const event of thrown)
      assert.ok(
        errors.some((e) => e.message.includes(`listener of ${event} broke`)),
        `the ${event} listener's error reported`,
      );
  } finally {
    await consumer?.stop();
  }
});
