import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type PostgresStore, postgresStore } from '../../src/adapters/postgres/postgres-store.ts';
import { PostgresReceiptStore } from '../../src/adapters/postgres/postgres-receipt-store.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { ordersProgress } from '../../src/examples/orders/order-audit.ts';
import { createOrderTables } from '../../src/examples/orders/order-tables.ts';
import { auditPoints, pointsProgress } from '../../src/examples/points/points-audit.ts';
import { createPointsTables } from '../../src/examples/points/points-tables.ts';
import { confirmations } from '../../src/operations/confirmations.ts';
import { createOutbox } from '../../src/outbox/outbox.ts';
import { MESSAGE_STATE } from '../../src/ports/outbox-store.ts';
import { insertOnly, recordBatch } from '../helpers/insert-only.ts';
import { freshSchema, uniqueName } from '../helpers/pg.ts';

// The readers of an outbox row's sending state other than the operations store, in the WAL relay's
// insert-only mode (migration 21): a new row is inserted with state 1 and no `sent_at`, and is sent only once
// an outbox_wal_batch row lists it. Each reader must show a batch-recorded row as sent (with the batch's
// time, partition and offset) and a row still in the stream as not sent. No relay runs: batches are written
// as the relay's ledger writes them, and "sent on the row" is written as the polling relay writes it.

let env: Awaited<ReturnType<typeof freshSchema>>;
let store: PostgresStore;
const dropSchemas: string[] = [];

before(async () => {
  env = await freshSchema('zlio');
  store = postgresStore(env.db, { schema: env.schema });
  await insertOnly(env.pool, env.schema);
});
after(async () => {
  for (const s of dropSchemas) await env.pool.query(`drop schema if exists "${s}" cascade`);
  await env.cleanup();
});

interface Row {
  id: string;
  seqId: string;
}

/** Enqueues one message per key (in order, one transaction each, so created_at increases), returns the rows. */
async function enqueue(topic: string, producerId: string, keys: string[]): Promise<Row[]> {
  const outbox = createOutbox({ store, producerId });
  const rows: Row[] = [];
  for (const key of keys) {
    const envelope = await store.transaction((tx) => outbox.enqueue(tx, { topic, key, type: 't', payload: { key } }));
    const { rows: found } = await env.pool.query<{ seq_id: string; state: number; sent_at: Date | null }>(
      `select seq_id::text, state, sent_at from "${env.schema}".outbox where message_id = $1`,
      [envelope.id],
    );
    const r = found[0];
    assert.ok(r, 'the row is committed');
    assert.deepEqual([r.state, r.sent_at], [1, null], 'insert-only: state 1, no sent_at');
    rows.push({ id: envelope.id, seqId: r.seq_id });
  }
  return rows;
}

/** As the polling relay (or a repair) records a send: on the row. */
async function sentOnRow(row: Row, partition: number, offset: number): Promise<void> {
  await env.pool.query(
    `update "${env.schema}".outbox set state = 1, sent_at = now(), sent_partition = $2, sent_offset = $3 where seq_id = $1`,
    [row.seqId, partition, offset],
  );
}

async function park(row: Row): Promise<void> {
  await env.pool.query(`update "${env.schema}".outbox set state = 3, last_error = 'refused' where seq_id = $1`, [row.seqId]);
}

/** When the batch listing `row` was written. */
async function batchAt(row: Row): Promise<Date> {
  const { rows } = await env.pool.query<{ at: Date }>(`select at from "${env.schema}".outbox_wal_batch where $1::bigint = any(seq_ids)`, [
    row.seqId,
  ]);
  assert.ok(rows[0], `a batch lists ${row.seqId}`);
  return rows[0].at;
}

test('confirmations: a batch-recorded row is sent at its batch position, a row in the stream is pending, others as before', async () => {
  const receipts = new PostgresReceiptStore(env.db, { schema: env.schema });
  const [inBatch, inStream, onRow, parked] = await enqueue(uniqueName('t1'), 'p1', ['a', 'b', 'c', 'd']);
  assert.ok(inBatch && inStream && onRow && parked);
  await recordBatch(env.pool, env.schema, [{ seqId: inBatch.seqId, partition: 2, offset: 40 }]);
  await sentOnRow(onRow, 5, 7);
  await park(parked);

  const rows = new Map((await receipts.confirmations([inBatch.id, inStream.id, onRow.id, parked.id])).map((r) => [r.messageId, r]));
  const view = (id: string) => {
    const r = rows.get(id);
    assert.ok(r, `a row for ${id}`);
    return { state: r.state, partition: r.sentPartition, offset: r.sentOffset, sent: r.sentAt !== null };
  };
  assert.deepEqual(view(inBatch.id), { state: 1, partition: 2, offset: 40n, sent: true });
  assert.equal(rows.get(inBatch.id)?.sentAt?.getTime(), (await batchAt(inBatch)).getTime(), 'sent at the batch time');
  assert.deepEqual(view(inStream.id), { state: 0, partition: null, offset: null, sent: false }, 'still in the stream: pending');
  assert.deepEqual(view(onRow.id), { state: 1, partition: 5, offset: 7n, sent: true });
  assert.deepEqual(view(parked.id), { state: 3, partition: null, offset: null, sent: false });

  // The API over it: only what was sent has a position.
  const api = new Map((await confirmations({ store: receipts }, [inBatch.id, inStream.id])).map((c) => [c.messageId, c.sent]));
  assert.deepEqual(api.get(inBatch.id), { partition: 2, offset: '40', at: (await batchAt(inBatch)).toISOString() });
  assert.equal(api.get(inStream.id), undefined);
});

test('group confirmations count batch-recorded rows as sent (by their batch time) and leave rows in the stream out', async () => {
  const receipts = new PostgresReceiptStore(env.db, { schema: env.schema });
  const topic = uniqueName('t2');
  const group = uniqueName('g2');
  const [confirmed, unconfirmed, inStream, onRow] = await enqueue(topic, 'p2', ['a', 'b', 'c', 'd']);
  assert.ok(confirmed && unconfirmed && inStream && onRow);
  await recordBatch(env.pool, env.schema, [
    { seqId: confirmed.seqId, partition: 0, offset: 1 },
    { seqId: unconfirmed.seqId, partition: 0, offset: 2 },
  ]);
  await sentOnRow(onRow, 0, 3);
  assert.equal(await receipts.recordReceipts([{ messageId: confirmed.id, group, appliedAt: new Date() }]), 1);

  const summary = await receipts.groupConfirmations(group, 3_600_000, 0);
  assert.deepEqual(summary.topics, [topic]);
  assert.deepEqual([summary.sent, summary.confirmed], [3, 1], 'the two batch-recorded rows and the one sent on its row');
  assert.equal(summary.oldestUnconfirmed?.messageId, unconfirmed.id);
  assert.equal(summary.oldestUnconfirmed?.sentAt.getTime(), (await batchAt(unconfirmed)).getTime());

  // Rows sent too recently are not counted yet: the batch time is their send time.
  const recent = await receipts.groupConfirmations(group, 3_600_000, 3_600_000);
  assert.deepEqual([recent.sent, recent.confirmed], [0, 0]);
});

test('producer marks: the newest sent sequence of a key, batch-recorded or on the row; a row in the stream is not sent', async () => {
  const producerId = uniqueName('p3');
  const topic = uniqueName('t3');
  const [x1, x2, x3, y1, z1] = await enqueue(topic, producerId, ['x', 'x', 'x', 'y', 'z']);
  assert.ok(x1 && x2 && x3 && y1 && z1);
  await recordBatch(env.pool, env.schema, [{ seqId: x1.seqId, partition: 1, offset: 10 }]);
  await recordBatch(env.pool, env.schema, [{ seqId: x2.seqId, partition: 1, offset: 11 }]);
  await sentOnRow(z1, 0, 5);

  const marks = (await store.sequences.recentSentMarks(3_600_000, 10_000))
    .filter((m) => m.producerId === producerId)
    .map((m) => [m.topic, m.key, m.seq, m.partition, m.offset])
    .sort((a, b) => String(a[1]).localeCompare(String(b[1])));
  assert.deepEqual(marks, [
    [topic, 'x', 2, 1, 11n],
    [topic, 'z', 1, 0, 5n],
  ]);
});

test('whenSent: waits while the row is in the stream, resolves with the batch position once a batch records it', async () => {
  const topic = uniqueName('t4');
  const outbox = createOutbox({ store, producerId: 'p4' });
  const [early, late] = await enqueue(topic, 'p4', ['a', 'b']);
  assert.ok(early && late);
  await recordBatch(env.pool, env.schema, [{ seqId: early.seqId, partition: 3, offset: 99 }]);

  const sent = await outbox.whenSent(early.id, { timeoutMs: 10_000 });
  assert.deepEqual([sent.topic, sent.partition, sent.offset], [topic, 3, 99n]);
  assert.equal(sent.sentAt.getTime(), (await batchAt(early)).getTime());

  const [status] = (await store.outbox.sendStatus?.([late.id])) ?? [];
  assert.deepEqual(
    [status?.state, status?.partition, status?.offset, status?.sentAt],
    [MESSAGE_STATE.pending, undefined, undefined, undefined],
  );
  await assert.rejects(outbox.whenSent(late.id, { timeoutMs: 300 }), (error: unknown) => {
    assert.ok(error instanceof ZerolossError);
    assert.equal(error.code, 'ZL_SEND_TIMEOUT', 'a row in the stream is not sent');
    assert.equal(error.details?.state, 'pending');
    return true;
  });

  const waiting = outbox.whenSent(late.id, { timeoutMs: 10_000 });
  await recordBatch(env.pool, env.schema, [{ seqId: late.seqId, partition: 4, offset: 100 }]);
  const lateSent = await waiting;
  assert.deepEqual([lateSent.partition, lateSent.offset], [4, 100n]);
});

test('the relay backlog counts the polling path only: rows in the stream are neither pending nor lost', async () => {
  const own = await freshSchema('zliob');
  try {
    const ownStore = postgresStore(own.db, { schema: own.schema });
    const outbox = createOutbox({ store: ownStore, producerId: 'p5' });
    const put = (key: string) => ownStore.transaction((tx) => outbox.enqueue(tx, { topic: 't5', key, type: 't', payload: {} }));
    await insertOnly(own.pool, own.schema);
    await put('a');
    await put('b');
    const idle = await ownStore.relaySource.backlog();
    assert.deepEqual([idle.pending, idle.failed, idle.parked, idle.oldestUnsentAgeMs, idle.nextDueInMs], [0, 0, 0, 0, undefined]);
    await insertOnly(own.pool, own.schema, false);
    await put('c');
    const one = await ownStore.relaySource.backlog();
    assert.deepEqual([one.pending, one.failed, one.parked], [1, 0, 0], 'a row inserted for the polling relay is pending');
  } finally {
    await own.cleanup();
  }
});

test('the examples audits count a row as published once sent, on its row or in a batch, not while in the stream', async () => {
  const orders = uniqueName('zlio_orders');
  const points = uniqueName('zlio_points');
  dropSchemas.push(orders, points);
  await createOrderTables(env.db, orders);
  await createPointsTables(env.db, points);

  const ordersTopic = uniqueName('t6');
  const [o1, o2, o3] = await enqueue(ordersTopic, 'p6', ['a', 'b', 'c']);
  assert.ok(o1 && o2 && o3);
  await recordBatch(env.pool, env.schema, [{ seqId: o1.seqId, partition: 0, offset: 0 }]);
  await sentOnRow(o2, 0, 1);
  const progress = await ordersProgress(env.db, {
    schema: orders,
    zerolossSchema: env.schema,
    topic: ordersTopic,
    groups: { inventory: 'gi', budget: 'gb', points: 'gp' },
  });
  assert.deepEqual([progress.published, progress.parked], [2, 0]);

  const pointsTopic = uniqueName('t7');
  const [q1, q2, q3, q4] = await enqueue(pointsTopic, 'p7', ['a', 'b', 'c', 'd']);
  assert.ok(q1 && q2 && q3 && q4);
  await recordBatch(env.pool, env.schema, [{ seqId: q1.seqId, partition: 0, offset: 0 }]);
  await sentOnRow(q2, 0, 1);
  await park(q4);
  const options = { schema: points, zerolossSchema: env.schema, groupId: 'g7', topic: pointsTopic };
  assert.equal((await pointsProgress(env.db, options)).published, 2);
  const audit = await auditPoints(env.db, options);
  assert.deepEqual([audit.published, audit.parked], [2, 1]);
});
