import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { REPLAY_HEADER } from '../../../src/consumer/dead-letters.ts';
import { createEffectTable, insertEffect, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { tableLogConsumer } from '../../helpers/table-log-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * The inbox forgets a message `inbox.retentionMs` after applying it; a log keeps it as long as it keeps it
 * (the table log until someone runs its retention, a Kafka topic with long retention). A copy that comes
 * back later (the group deleted and started again, a consumer down longer than the retention before it
 * committed) found no inbox row and was applied a second time. A message created before the inbox's memory
 * and not found in it cannot be told from one applied and forgotten: it is dead-lettered instead, and only
 * a person's replay applies it.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlbim');
  await createEffectTable(env.db, env.schema);
});
after(async () => {
  await env.cleanup();
});

test('a copy that comes back after the inbox forgot its message is dead-lettered, not applied again; a replay applies it', async () => {
  const topic = 'memory';
  const admin = new TableLogAdmin(env.db, { schema: env.schema });
  for (const t of [topic, `${topic}.dlq`]) await admin.createTopic(t, 1);
  const publisher = new TableLogPublisher(env.db, { schema: env.schema });
  let consumer: Consumer | undefined;
  try {
    consumer = tableLogConsumer(env, {
      groupId: 'memory',
      topics: [topic],
      inbox: { retentionMs: 1_500, replayHorizonMs: 1_000, cleanupIntervalMs: 200 },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    await consumer.start();
    const record = zlRecord({ topic, key: 'k', type: 'credit', payload: { n: 1 } });
    const id = record.headers['zl-id'] as string;
    const effects = async () =>
      Number((await env.pool.query(`select count(*)::int as n from "${env.schema}".effect where message_id = $1`, [id])).rows[0].n);
    for (const o of await publisher.publish([record])) assert.ok(o.ok);
    await waitFor(async () => (await effects()) === 1, { what: 'the message applied' });
    await waitFor(async () => (await env.pool.query(`select 1 from "${env.schema}".inbox where message_id = $1`, [id])).rows.length === 0, {
      what: "the inbox's cleanup forgetting it",
      timeoutMs: 10_000,
    });
    // The same message again, as after the group was deleted and started over.
    for (const o of await publisher.publish([record])) assert.ok(o.ok);
    const dead = async () =>
      (await env.pool.query(`select id::text, error_code from "${env.schema}".dead_letter where message_id = $1`, [id])).rows;
    await waitFor(async () => (await dead()).length === 1 || (await effects()) > 1, { what: 'the copy handled', timeoutMs: 10_000 });
    assert.equal(await effects(), 1, 'not applied a second time');
    assert.equal((await dead())[0]?.error_code, 'ZL_BEYOND_INBOX_MEMORY');
    // A person who knows it was not applied replays it: the replay copy is applied.
    for (const o of await publisher.publish([{ ...record, headers: { ...record.headers, [REPLAY_HEADER]: (await dead())[0]?.id } }])) {
      assert.ok(o.ok);
    }
    await waitFor(async () => (await effects()) === 2, { what: 'the replay applied', timeoutMs: 10_000 });
  } finally {
    await consumer?.stop();
  }
});
