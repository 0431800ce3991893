import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { quoteIdent } from '../../../src/core/identifier.ts';
import { operationsSql } from '../../../src/adapters/postgres/operations-sql.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { status } from '../../../src/operations/status.ts';
import { insertOnly, recordBatch } from '../../helpers/insert-only.ts';
import { recordingDatabase, type RanStatement } from '../../helpers/recording-database.ts';
import { freshSchema } from '../../helpers/pg.ts';

/**
 * A `status` round (the command, and `zeroloss serve`'s collector and the dashboard, which run it every few
 * seconds) reads the insert-only stream floor once and gives it to both of its outbox counts (the summary
 * and the unsent rows by topic). Each count read it for itself: two floor reads a round, each a few index
 * probes per slot. The statements the store runs are counted through a wrapping Database.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
let ran: RanStatement[];
let store: PostgresOperationsStore;

beforeEach(async () => {
  env = await freshSchema('zlsfo');
  const recording = recordingDatabase(env.db);
  ran = recording.ran;
  store = new PostgresOperationsStore(recording.db, { schema: env.schema });
});
afterEach(async () => {
  await env.cleanup();
});

test('a status round reads the stream floor once, and both counts stay right', async () => {
  const s = quoteIdent(env.schema, 'schema');
  await insertOnly(env.pool, env.schema);
  const { rows } = await env.pool.query<{ seq_id: string; topic: string }>(
    `insert into ${s}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload)
     select 'm-' || g, case when g % 2 = 0 then 'even' else 'odd' end, 'k', 'credit', 't', 'p', '{}'::jsonb, '\\x00'::bytea
     from generate_series(1, 10) g returning seq_id::text, topic`,
  );
  // Six rows listed by a batch (sent); four still in the stream (pending): m-7..m-10.
  await recordBatch(
    env.pool,
    env.schema,
    rows.slice(0, 6).map((r, i) => ({ seqId: r.seq_id, partition: 0, offset: i })),
    { endLsn: '0/1' },
  );

  const sql = operationsSql(s);
  ran.length = 0;
  const round = await status({ store }, { groups: [] });
  assert.equal(ran.filter((r) => r.sql === sql.streamFloor).length, 1, 'the floor statement runs once per round');
  assert.equal(round.outbox.pending, 4);
  assert.equal(round.outbox.insertOnly, true);
  // Both counts ran from the floor that one read gave: the first listed row's seq_id (a single batch).
  const summary = ran.filter((r) => r.sql === sql.outboxSummaryFrom);
  const byTopic = ran.filter((r) => r.sql === sql.unsentByTopicFrom);
  assert.deepEqual([summary.map((r) => r.params.at(-1)), byTopic.map((r) => r.params.at(-1))], [[rows[0]?.seq_id], [rows[0]?.seq_id]]);

  // The rows by topic, from the store's one read of both counts.
  assert.deepEqual(
    (await store.outboxBacklog(300_000)).byTopic.map((t) => [t.topic, t.unsent]),
    [
      ['even', 2],
      ['odd', 2],
    ],
  );
});
