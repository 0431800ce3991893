import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { cleanup } from '../../../src/operations/retention.ts';

import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

/** Acceptance 5: cleanup removes only rows past retention, and never an unsent outbox row. */
describe('retention cleanup', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlret');
  });
  after(async () => {
    await env.cleanup();
  });

  test('deletes sent rows, inbox rows and resolved dead letters past retention, in batches; keeps everything else', async () => {
    const s = `"${env.schema}"`;
    const outbox = testOutbox({ schema: env.schema });
    const rows: Record<string, string> = {};
    // name → [state, age in days]
    const plan: Record<string, [number, number]> = {
      oldSent1: [1, 20],
      oldSent2: [1, 20],
      oldSent3: [1, 15],
      recentSent: [1, 3],
      oldPending: [0, 30],
      oldFailed: [2, 30],
      oldParked: [3, 30],
    };
    for (const [name, [state, days]] of Object.entries(plan)) {
      rows[name] = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic: 't', key: name, type: 'x', payload: name }))).id;
      await env.pool.query(
        `update ${s}.outbox set state = $2::smallint, created_at = now() - $3 * interval '1 day',
           sent_at = case when $2::smallint = 1 then now() - $3 * interval '1 day' end where message_id = $1`,
        [rows[name], state, days],
      );
      await env.pool.query(
        `insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor) values ($1, 0, $2, 1, 'test')`,
        [rows[name], state],
      );
    }
    // A row sent just now after an old commit (a long outage) is kept until its send is old too.
    rows.lateSent = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic: 't', key: 'late', type: 'x', payload: 1 }))).id;
    await env.pool.query(
      `update ${s}.outbox set state = 1, created_at = now() - interval '20 days', sent_at = now() where message_id = $1`,
      [rows.lateSent],
    );
    for (const [key, days] of [
      ['old-a', 20],
      ['old-b', 16],
      ['new-a', 1],
    ] as const) {
      await env.pool.query(
        `insert into ${s}.inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, processed_at)
         values ('g', $1, $1, 't', 0, 0, now() - $2 * interval '1 day')`,
        [key, days],
      );
    }
    for (const [status, days] of [
      ['discarded', 40],
      ['dead', 40],
      ['replayed', 5],
    ] as const) {
      await env.pool.query(
        `insert into ${s}.dead_letter (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset, msg_key, headers, payload,
           error_code, error, attempts, first_failure_at, last_failure_at, status, resolved_at)
         values ('g', $1, $1, 't', 0, 0, 'k', '{}', '\\x00', 'E', 'e', 1, now(), now(), $1::text,
           case when $1::text <> 'dead' then now() - $2 * interval '1 day' end)`,
        [status, days],
      );
    }

    const { code, json } = await zerolossJson<Record<string, number>>([
      'cleanup',
      '--pg',
      PG_URL,
      '--schema',
      env.schema,
      '--outbox',
      '14d',
      '--inbox',
      '14d',
      '--dead-letters',
      '30d',
      '--batch-size',
      '2',
      '--pause',
      '0ms',
    ]);
    assert.equal(code, 0);
    assert.deepEqual(json, { outbox: 3, inbox: 2, dead_letter: 1, reconcile_run: 0, sequence_alarm: 0 });

    const left = new Set((await env.pool.query(`select message_id from ${s}.outbox`)).rows.map((r) => r.message_id));
    for (const name of ['recentSent', 'oldPending', 'oldFailed', 'oldParked', 'lateSent']) assert.ok(left.has(rows[name]), `${name} kept`);
    for (const name of ['oldSent1', 'oldSent2', 'oldSent3']) assert.ok(!left.has(rows[name]), `${name} deleted`);
    const transitions = (await env.pool.query(`select message_id from ${s}.outbox_transition`)).rows.map((r) => r.message_id);
    assert.equal(transitions.length, 4, 'transitions of deleted rows go with them');
    assert.ok(transitions.every((id) => left.has(id)));
    assert.deepEqual((await env.pool.query(`select idempotency_key from ${s}.inbox`)).rows, [{ idempotency_key: 'new-a' }]);
    assert.deepEqual(
      (await env.pool.query(`select status from ${s}.dead_letter order by status`)).rows.map((r) => r.status),
      ['dead', 'replayed'],
      'open dead letters are never deleted',
    );

    // Nothing more is past retention; the library reports it in the metrics.
    const metrics = createOpsMetrics(new Registry());
    const again = await cleanup(
      { store: new PostgresOperationsStore(env.db, { schema: env.schema }), metrics },
      { outboxMs: 86_400_000 * 14 },
    );
    assert.equal(again.outbox, 0);
    const text = await metrics.registry.metrics();
    assert.match(text, /zeroloss_retention_runs_total 1/);
    await assert.rejects(
      cleanup({ store: new PostgresOperationsStore(env.db, { schema: env.schema }) }, { inboxMs: 1000, replayHorizonMs: 2000 }),
      /must be longer than replayHorizonMs/,
      'an inbox retention shorter than the replay horizon is refused',
    );
  });
});
