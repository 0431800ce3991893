import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { StateColumnSource } from '../../src/adapters/postgres/state-column-source.ts';
import { tableLog } from '../../src/adapters/table-log/table-log-transport.ts';
import { freshSchema } from '../helpers/pg.ts';
import { brokerCopies, runCrashPoints } from '../helpers/relay-crash-after-ack.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlscbc');
});
after(async () => {
  await env.cleanup();
});

/**
 * P5 with a live relay for a state-column source: a relay that dies between the broker's ack and recording
 * it leaves the row's lease set in source_row. The next claim reports that earlier lease, the relay finds
 * the message on the broker and records the row sent at the broker's position (the source's own markSent)
 * instead of sending it again. Crash points are injected in-process (test/helpers/relay-crash-after-ack.ts).
 */
test('state-column source: 100 crash points after the ack, 0 resends, none lost, each key in order', async () => {
  const s = env.schema;
  const crashes = 100;
  const batchSize = 2;
  const keys = 7;
  const total = crashes * batchSize + 3;
  await env.db.query(
    `create table "${s}".user_strategy_export (id bigserial primary key, user_id text not null,
       mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  await env.db.query(`insert into "${s}".user_strategy_export (user_id) select 'k' || (g % ${keys}) from generate_series(0, $1 - 1) g`, [
    total,
  ]);
  const transport = tableLog({ db: env.db, schema: s });
  const topic = 'zl-scbc';
  await transport.ensureTopic(topic, 3);
  const source = new StateColumnSource<{ id: number; user_id: string }>(env.db, {
    name: 'export_check',
    table: 'user_strategy_export',
    tableSchema: s,
    schema: s,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'user_id',
    toMessage: (r) => ({ topic, key: r.user_id, type: 'export', payload: { id: r.id } }),
  });

  const started = performance.now();
  const result = await runCrashPoints({
    source,
    publisher: transport.publisher,
    inspector: transport.inspector,
    crashes,
    // A lease that ends at once: the next crash point's relay claims the rows right away.
    config: { batchSize, leaseMs: 1, brokerCheckSlackMs: 200 },
  });
  const elapsedMs = Math.round(performance.now() - started);

  const { copies, seqs } = await brokerCopies(transport.inspector, topic);
  const { rows: ids } = await env.db.query<{ message_id: string }>(`select message_id from "${s}".source_row where source = $1`, [
    source.name,
  ]);
  const { rows } = await env.db.query<{ sent: number; no_position: number }>(
    `select count(*) filter (where b.mq_state = 1)::int as sent,
            count(*) filter (where b.mq_state = 1 and r.sent_offset is null)::int as no_position
     from "${s}".user_strategy_export b join "${s}".source_row r on r.source = $1 and r.row_id = b.id::text`,
    [source.name],
  );
  const summary = {
    crashes: result.crashes,
    acked: result.acked.size,
    resendsOfAcked: result.resendsOfAcked,
    lost: ids.filter((r) => !copies.has(r.message_id)).length,
    duplicated: [...copies.values()].filter((n) => n > 1).length,
    outOfOrder: [...seqs.values()].filter((q) => q.some((v, i) => i > 0 && v <= (q[i - 1] as number))).length,
    sentRows: rows[0]?.sent,
    noPosition: rows[0]?.no_position,
    total,
    elapsedMs,
    checks: result.check.rounds,
    foundOnBroker: result.check.found,
  };
  process.stdout.write(`# ${JSON.stringify(summary)}\n`);
  assert.equal(summary.crashes, crashes, 'every crash point reached');
  assert.equal(summary.resendsOfAcked, 0, `resends of messages the broker had acknowledged: ${JSON.stringify(summary)}`);
  assert.equal(ids.length, total, 'every row built');
  assert.equal(summary.lost, 0, 'none lost');
  assert.equal(summary.duplicated, 0, 'one copy of each on the topic');
  assert.equal(summary.outOfOrder, 0, 'each key in order');
  assert.equal(summary.sentRows, total, 'every row recorded sent');
  assert.equal(summary.noPosition, 0, 'every row has the broker position recorded');
  assert.equal(summary.foundOnBroker, crashes * batchSize, 'every row a crash point left was found on the broker');
});
