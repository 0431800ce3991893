import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { type Dashboard, startDashboard } from '../../../src/dashboard/start-dashboard.ts';
import { createOutbox, createRelay } from '../../../src/index.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** The actions the browser test does not click: discards, resend of a window, and actions without a broker. */
describe('dashboard actions', () => {
  const schema = uniqueName('zldact');
  const s = `"${schema}"`;
  const store = postgres(PG_URL, { schema, max: 4 });
  const transport = tableLog(store);
  let board: Dashboard;
  let readOnly: Dashboard;
  const sent: string[] = [];
  let parked: string;
  let deadLetter: string;

  before(async () => {
    await store.migrate();
    await transport.ensureTopic('orders', 1);
    const outbox = createOutbox({ store, producerId: 'act' });
    await store.transaction(async (tx) => {
      for (let n = 0; n < 3; n++) sent.push((await outbox.enqueue(tx, { topic: 'orders', key: 'k', type: 't', payload: { n } })).id);
    });
    const relay = createRelay({ store, transport });
    await relay.start();
    await waitFor(async () => (await store.db.query(`select 1 from ${s}.outbox where state = 1`)).rows.length === 3, { what: 'sent' });
    await relay.stop();
    parked = (await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'p', type: 't', payload: { email: 'a@b.c' } })))
      .id;
    await store.db.query(`update ${s}.outbox set state = 3, attempts = 10 where message_id = $1`, [parked]);
    deadLetter = (
      await store.deadLetters.record({
        groupId: 'g',
        idempotencyKey: 'dl-1',
        messageId: 'dl-1',
        topic: 'orders',
        partition: 0,
        offset: 0n,
        key: 'k',
        type: 't',
        headers: {},
        payload: Buffer.from('{}'),
        errorCode: 'ZL_PERMANENT',
        error: 'no',
        stack: undefined,
        attempts: 1,
        firstFailureAt: new Date(),
        lastFailureAt: new Date(),
      })
    ).id;
    const deps = { schema, store: store.operations, deadLetters: store.deadLetters, broker: transport.inspector };
    board = await startDashboard(
      { ...deps, publisher: () => transport.publisher },
      { port: 0, sampleEveryMs: 60_000, redactFields: ['email'] },
    );
    readOnly = await startDashboard(deps, { port: 0, sampleEveryMs: 60_000 });
  });
  after(async () => {
    await board?.close();
    await readOnly?.close();
    await transport.close();
    await store.db.query(`drop schema if exists ${s} cascade`).catch(() => {});
    await store.close();
  });

  const act = async (on: Dashboard, action: string, body: unknown) => {
    const page = await (await fetch(`${on.url}/parked`)).text();
    const csrf = /name="zeroloss-csrf" content="([^"]+)"/.exec(page)?.[1] ?? '';
    const res = await fetch(`${on.url}/actions/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-zeroloss-csrf': csrf },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { ok: boolean; result: Record<string, unknown>; error?: string } };
  };
  const audit = async (action: string) =>
    (await store.db.query(`select actor, reason, message_id from ${s}.operation_audit where action = $1 order by id`, [action])).rows;

  test('discard a parked row: gone from the outbox, its content in the audit, shown redacted', async () => {
    const r = await act(board, 'parked/discard', { ids: [parked], reason: 'order cancelled' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.result, { discarded: [parked], notParked: [] });
    assert.equal((await store.db.query(`select 1 from ${s}.outbox where message_id = $1`, [parked])).rows.length, 0);
    assert.deepEqual(await audit('outbox.discard'), [{ actor: 'dashboard:local', reason: 'order cancelled', message_id: parked }]);
    assert.match(await (await fetch(`${board.url}/audit`)).text(), /order cancelled/);
    // The message page shows the audit entry's details: the discarded row's payload, through the redaction.
    const page = await (await fetch(`${board.url}/messages/${parked}`)).text();
    assert.match(page, /discarded from the outbox by dashboard:local/);
    assert.match(page, /email\\&#34;:\\&#34;\[redacted\]/);
    assert.doesNotMatch(page, /a@b\.c/);
    const again = await act(board, 'parked/discard', { ids: [parked], reason: 'twice' });
    assert.deepEqual([again.body.ok, again.body.result.notParked], [false, [parked]]);
  });

  test('discard a dead letter: status discarded, audited', async () => {
    const r = await act(board, 'dead-letters/discard', { ids: [deadLetter], reason: 'duplicate order' });
    assert.equal(r.body.ok, true);
    assert.equal((await store.deadLetters.get(deadLetter))?.status, 'discarded');
    assert.deepEqual(await audit('dead-letter.discard'), [{ actor: 'dashboard:local', reason: 'duplicate order', message_id: 'dl-1' }]);
  });

  test('resend a window of sent rows: republished at new offsets, each audited', async () => {
    const r = await act(board, 'resend', { from: '1h', to: 'now', topic: 'orders', reason: 'broker lost them' });
    assert.equal(r.status, 200, r.body.error);
    assert.deepEqual([...(r.body.result.resent as string[])].sort(), [...sent].sort());
    const rows = await audit('outbox.resend');
    assert.equal(rows.length, 3);
    assert.ok(rows.every((a) => a.reason === 'broker lost them' && a.actor === 'dashboard:local'));
    const marks = await transport.inspector.watermarks('orders');
    assert.equal(marks?.[0]?.high, 6n, 'three first copies and three resent');
  });

  test('run a reconciliation: its report, the run listed on the page, audited with the reason', async () => {
    const r = await act(board, 'reconcile', { from: '1h', to: 'now', reason: 'after the resend' });
    assert.equal(r.status, 200, r.body.error);
    const counts = r.body.result.counts as Record<string, number>;
    assert.deepEqual([counts.committed, counts.sent, counts.onBroker], [3, 3, 3]);
    assert.equal(r.body.result.verdict, 'clean');
    assert.deepEqual(await audit('reconcile.run'), [{ actor: 'dashboard:local', reason: 'after the resend', message_id: null }]);
    const page = await (await fetch(`${board.url}/reconcile`)).text();
    assert.match(page, /<td>manual<\/td>.*<td>clean<\/td>/s, 'listed under recent runs');
  });

  test('without a broker to publish to, replay and resend answer 409 and change nothing', async () => {
    const replay = await act(readOnly, 'dead-letters/replay', { ids: [deadLetter], reason: 'r' });
    assert.equal(replay.status, 409);
    const resend = await act(readOnly, 'resend', { from: '1h', reason: 'r' });
    assert.equal(resend.status, 409);
    assert.equal((await transport.inspector.watermarks('orders'))?.[0]?.high, 6n);
    const page = await (await fetch(`${readOnly.url}/reconcile`)).text();
    assert.match(page, /need a broker to publish to/);
  });
});
