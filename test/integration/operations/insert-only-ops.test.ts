import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogInspector } from '../../../src/adapters/table-log/table-log-inspector.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import { divert } from '../../../src/operations/backlog.ts';
import { reconcile } from '../../../src/operations/reconcile.ts';
import { resend } from '../../../src/operations/resend.ts';
import { cleanup } from '../../../src/operations/retention.ts';
import { trace } from '../../../src/operations/trace.ts';

import { insertOnly, recordBatch } from '../../helpers/insert-only.ts';
import { freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

const TOPIC = 'points';
const DAY = 86_400_000;

/**
 * The operations tools in the outbox's insert-only mode (migration 21): a row is inserted with state 1 and
 * no `sent_at`, and the WAL relay records its send in an `outbox_wal_batch` row. Here the relay's part is
 * played by hand: a row is published to the embedded table log and recorded with `recordBatch`, or left
 * "in the stream" (neither). Every tool must read the first as sent where the batch says and the second as
 * pending.
 */
describe('operations in the insert-only mode', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let store: PostgresOperationsStore;
  let publisher: TableLogPublisher;
  let broker: TableLogInspector;
  let s: string;

  beforeEach(async () => {
    env = await freshSchema('zlins');
    s = `"${env.schema}"`;
    store = new PostgresOperationsStore(env.db, { schema: env.schema });
    publisher = new TableLogPublisher(env.db, { schema: env.schema });
    broker = new TableLogInspector(env.db, { schema: env.schema });
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic(TOPIC, 1);
    await insertOnly(env.pool, env.schema);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const enqueue = async (key: string, topic = TOPIC) => {
    const outbox = testOutbox({ schema: env.schema });
    return (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key, type: 'credit', payload: { key } }))).id;
  };

  /** Publishes the rows of `ids` to the table log as the relay would; their seq ids and where they went. */
  const publish = async (ids: string[]) => {
    const { rows } = await env.pool.query(
      `select seq_id::text, message_id, topic, msg_key, headers, payload from ${s}.outbox where message_id = any($1) order by seq_id`,
      [ids],
    );
    const outcomes = await publisher.publish(rows.map((r) => ({ topic: r.topic, key: r.msg_key, headers: r.headers, value: r.payload })));
    return rows.map((r, i) => {
      const o = outcomes[i];
      assert.ok(o?.ok && o.partition !== undefined && o.offset !== undefined, 'published');
      return { messageId: r.message_id as string, seqId: r.seq_id as string, partition: o.partition, offset: o.offset };
    });
  };

  /** Publishes and records one batch, as the WAL relay does after the broker confirmed. */
  const send = async (ids: string[]) => {
    const sent = await publish(ids);
    await recordBatch(env.pool, env.schema, sent);
    return sent;
  };

  const lastBatchId = async () => String((await env.pool.query(`select max(id)::text as id from ${s}.outbox_wal_batch`)).rows[0].id);
  const batchIds = async () => (await env.pool.query(`select id::text from ${s}.outbox_wal_batch order by id`)).rows.map((r) => r.id);
  const age = async (table: 'outbox' | 'outbox_wal_batch', where: string, value: string, ms: number) => {
    const column = table === 'outbox' ? 'created_at' : 'at';
    await env.pool.query(`update ${s}.${table} set ${column} = now() - $2 * interval '1 millisecond' where ${where} = $1`, [value, ms]);
  };
  const window = () => ({ from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000) });

  test('trace and the reconcile windows show a batch-recorded row as sent where the batch says, a row in the stream as pending', async () => {
    const sentId = await enqueue('a');
    const streamId = await enqueue('b');
    const [sent] = await send([sentId]);
    const batchAt = (await env.pool.query(`select at from ${s}.outbox_wal_batch`)).rows[0].at as Date;

    const t = await trace({ store, broker }, sentId);
    assert.equal(t.outbox?.state, 1);
    assert.equal(t.outbox?.stateName, 'sent');
    assert.equal(t.outbox?.sentAt?.getTime(), batchAt.getTime(), "sent when the batch's row says");
    assert.equal(t.outbox?.sentPartition, sent?.partition);
    assert.equal(t.outbox?.sentOffset, sent?.offset.toString());
    assert.equal(t.broker?.recorded?.check, 'found', "the batch's position holds the message");

    const u = await trace({ store, broker }, streamId);
    assert.equal(u.outbox?.state, 0);
    assert.equal(u.outbox?.stateName, 'pending');
    assert.equal(u.outbox?.sentAt, null);
    assert.equal(u.outbox?.sentPartition, null);
    assert.equal(u.stop.stage, 'relay');
    assert.equal(u.outbox?.inStream, true);
    assert.match(u.stop.reason, /in the WAL stream: no relay has recorded it sent yet/);

    const byState = async (state: 0 | 1) => (await store.outboxRows({ window: window(), state }, undefined, 10)).map((r) => r.messageId);
    assert.deepEqual(await byState(1), [sentId]);
    assert.deepEqual(await byState(0), [streamId]);
    const all = await store.outboxWindow(window(), [TOPIC], undefined, 10);
    assert.deepEqual(
      all.map((r) => [r.messageId, r.state, r.sentPartition, r.sentOffset]),
      [
        [sentId, 1, sent?.partition, sent?.offset],
        [streamId, 0, null, null],
      ],
    );
  });

  test('reconcile marks sent a row the broker holds that no batch records, never a batch-recorded one, and leaves the stream pending', async () => {
    const recordedId = await enqueue('a');
    const ackedId = await enqueue('b');
    const streamId = await enqueue('c');
    const [recorded] = await send([recordedId]);
    const [acked] = await publish([ackedId]);

    const report = await reconcile({ store, broker, publisher }, window(), { actor: 'reconcile-test' });
    assert.deepEqual(report.missing.broker, [], 'a row still in the stream is not missing on the broker');
    assert.deepEqual(report.ackedNotMarked, { ids: [ackedId], marked: true });
    assert.equal(report.counts.sent, 1);
    assert.equal(report.counts.pending, 2);

    const a = await trace({ store }, ackedId);
    assert.equal(a.outbox?.state, 1);
    assert.equal(a.outbox?.sentPartition, acked?.partition);
    assert.equal(a.outbox?.sentOffset, acked?.offset.toString());
    assert.deepEqual(
      a.transitions.map((x) => [x.from, x.to, x.actor]),
      [[0, 1, 'reconcile-test']],
      'it was pending (in the stream) as every reader showed it',
    );
    assert.equal((await trace({ store }, streamId)).outbox?.state, 0);

    // A batch-recorded row is sent already: a repair leaves it (and its batch's position) alone.
    assert.deepEqual(
      await store.markSentFromBroker([{ messageId: recordedId, partition: 0, offset: 99n, timestampMs: Date.now() }], 'test'),
      [],
    );
    const r = await trace({ store }, recordedId);
    assert.equal(r.outbox?.sentOffset, recorded?.offset.toString());
    assert.deepEqual(r.transitions, []);
    assert.deepEqual(r.audit, []);
  });

  test('resend re-publishes a batch-recorded row and never records a resend of a row still in the stream', async () => {
    const recordedId = await enqueue('a');
    const streamId = await enqueue('b');
    const [recorded] = await send([recordedId]);

    const result = await resend({ store, publisher }, { ids: [recordedId, streamId] }, { actor: 'test', reason: 'the broker lost it' });
    assert.deepEqual(result.resent, [recordedId]);
    assert.deepEqual(result.skipped, [{ messageId: streamId, reason: 'not sent yet: the relay sends it' }]);
    assert.deepEqual(result.failed, []);
    const r = await trace({ store, broker }, recordedId);
    assert.equal(r.outbox?.state, 1);
    assert.notEqual(r.outbox?.sentOffset, recorded?.offset.toString(), 'the new position is recorded');
    assert.equal(r.broker?.recorded?.check, 'found');
    assert.equal(r.broker?.copies.length, 2);
    assert.deepEqual(
      r.transitions.map((x) => [x.from, x.to]),
      [[1, 1]],
    );

    // What the store accepts: a row in the stream was never sent, so it has no resend to record.
    assert.deepEqual(await store.recordResent([{ messageId: streamId, partition: 0, offset: 7n }], 'test', 'x'), []);
    const u = await trace({ store, broker }, streamId);
    assert.equal(u.outbox?.state, 0);
    assert.equal(u.outbox?.sentAt, null);
    assert.deepEqual(u.broker?.copies, []);
  });

  test('status counts rows still in the stream as pending, stuck and oldest; per topic too', async () => {
    // No batch yet: every row inserted for the stream is in it.
    const first = await enqueue('a');
    let summary = await store.outboxSummary(300_000);
    assert.equal(summary.pending, 1);
    assert.deepEqual(await store.unsentByTopic(), [{ topic: TOPIC, unsent: 1, topicUnavailable: 0, topicError: null }]);

    await send([first]);
    for (const key of ['b', 'c', 'd', 'e']) await send([await enqueue(key)]);
    assert.equal((await store.outboxSummary(300_000)).pending, 0, 'all recorded in batches');

    const old = await enqueue('f');
    await age('outbox', 'message_id', old, 600_000);
    await enqueue('g');
    await enqueue('h', 'other');
    const failed = await enqueue('i');
    await env.pool.query(`update ${s}.outbox set state = 2, last_error = 'E: boom' where message_id = $1`, [failed]);
    summary = await store.outboxSummary(300_000);
    assert.equal(summary.pending, 3);
    assert.equal(summary.failed, 1);
    assert.equal(summary.stuck, 1, 'the row in the stream for ten minutes');
    assert.ok(summary.oldestUnsentAgeMs >= 600_000, `oldest ${summary.oldestUnsentAgeMs}`);
    assert.deepEqual(await store.unsentByTopic(), [
      { topic: 'other', unsent: 1, topicUnavailable: 0, topicError: null },
      { topic: TOPIC, unsent: 3, topicUnavailable: 0, topicError: null },
    ]);

    // Switched off: outside the mode status looks for no row in the stream (the outbox's unsent index only),
    // so the three inserted for it before are not counted while they stay there ...
    await insertOnly(env.pool, env.schema, false);
    await enqueue('j');
    summary = await store.outboxSummary(300_000);
    assert.equal(summary.pending, 1, 'the polling relay’s row');
    // ... which they do not: --drop-slot leaves the mode handing them to the polling path, which counts them.
    await env.pool.query(
      `update ${s}.outbox o set state = 0 where o.state = 1 and o.sent_at is null
         and not exists (select 1 from ${s}.outbox_wal_batch b where o.seq_id = any(b.seq_ids))`,
    );
    summary = await store.outboxSummary(300_000);
    assert.equal(summary.pending, 4, 'three handed over, one for the polling relay');
  });

  test('retention deletes batch-recorded rows and their batches past the cutoff, never a row still in the stream', async () => {
    const oldRecorded = await enqueue('a');
    await send([oldRecorded]);
    const oldBatch = await lastBatchId();
    await age('outbox_wal_batch', 'id', oldBatch, 20 * DAY);
    await age('outbox', 'message_id', oldRecorded, 20 * DAY);

    // Committed long ago, never recorded: still in the stream, a message that must not be lost.
    const oldStream = await enqueue('b');
    await age('outbox', 'message_id', oldStream, 20 * DAY);

    // Committed long ago, recorded recently (a long outage): kept until its send is old too.
    const lateSent = await enqueue('c');
    await send([lateSent]);
    const recentBatch = await lastBatchId();
    await age('outbox', 'message_id', lateSent, 20 * DAY);

    // Its batch is old but the row is not: the row stays, and so must its batch (without it the row would
    // read as unsent).
    const young = await enqueue('d');
    await send([young]);
    const youngsBatch = await lastBatchId();
    await age('outbox_wal_batch', 'id', youngsBatch, 20 * DAY);

    // Resent since (the send recorded on the row): its old batch is no longer needed.
    const resent = await enqueue('e');
    await send([resent]);
    const resentsBatch = await lastBatchId();
    await age('outbox_wal_batch', 'id', resentsBatch, 20 * DAY);
    await age('outbox', 'message_id', resent, 20 * DAY);
    assert.deepEqual((await resend({ store, publisher }, { ids: [resent] }, { actor: 'test', reason: 'lost' })).resent, [resent]);

    const result = await cleanup({ store }, { outboxMs: 14 * DAY, pauseMs: 0 });
    assert.equal(result.outbox, 1, 'the outbox rows deleted, and only them');
    const left = (await env.pool.query(`select message_id from ${s}.outbox order by seq_id`)).rows.map((r) => r.message_id);
    assert.deepEqual(left, [oldStream, lateSent, young, resent]);
    assert.deepEqual(await batchIds(), [recentBatch, youngsBatch]);
    assert.equal((await trace({ store }, oldStream)).outbox?.state, 0);
    assert.equal((await trace({ store }, young)).outbox?.state, 1);

    // In small statements: each one's batch rows go once their rows went.
    await age('outbox_wal_batch', 'id', recentBatch, 20 * DAY);
    await env.pool.query(`update ${s}.outbox set created_at = now() - interval '20 days' where message_id = $1`, [young]);
    const again = await cleanup({ store }, { outboxMs: 14 * DAY, pauseMs: 0, batchSize: 1 });
    assert.equal(again.outbox, 2);
    assert.deepEqual(await batchIds(), []);
    const kept = (await env.pool.query(`select message_id from ${s}.outbox order by seq_id`)).rows.map((r) => r.message_id);
    assert.deepEqual(kept, [oldStream, resent]);
  });

  test('moving unsent rows of a diverted topic leaves rows in the stream, which the stream sends', async () => {
    const streamId = await enqueue('a');
    await insertOnly(env.pool, env.schema, false);
    const pollingId = await enqueue('b');
    const moved = await divert({ store }, { topic: TOPIC, types: ['*'], target: 'points-b', moveUnsent: true });
    assert.equal(moved.moved, 1);
    const topics = (await env.pool.query(`select message_id, topic from ${s}.outbox order by seq_id`)).rows;
    assert.deepEqual(topics, [
      { message_id: streamId, topic: TOPIC },
      { message_id: pollingId, topic: 'points-b' },
    ]);
  });
});
