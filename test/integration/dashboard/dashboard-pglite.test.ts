import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { type Dashboard, startDashboard } from '../../../src/dashboard/start-dashboard.ts';
import { pglite } from '../../../src/entry/pglite.ts';
import { tableLog } from '../../../src/entry/table-log.ts';
import { type Consumer, createConsumer, createOutbox, createRelay } from '../../../src/index.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** The embedded default: the dashboard in the process that holds the PGlite, over the same ports. */
describe('dashboard on PGlite', () => {
  const instance = new PGlite();
  const store = pglite(instance);
  const transport = tableLog(store, { subscriber: { pollIntervalMs: 100, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 } });
  const ids: string[] = [];
  let consumer: Consumer;
  let board: Dashboard;
  const count = async (sql: string) => (await instance.query<{ n: number }>(`select count(*)::int as n from ${sql}`)).rows[0]?.n;

  before(async () => {
    await store.migrate();
    await transport.ensureTopic('orders', 2);
    await instance.query('create table effect (id text primary key)');
    const outbox = createOutbox({ store, producerId: 'embedded' });
    await store.transaction(async (tx) => {
      for (let n = 0; n < 5; n++)
        ids.push((await outbox.enqueue(tx, { topic: 'orders', key: `u${n}`, type: 'credit', payload: { n } })).id);
    });
    const relay = createRelay({ store, transport });
    consumer = createConsumer({ store, transport, groupId: 'shipping', topics: ['orders'] });
    consumer.handle('credit', async (m, { tx }) => {
      await tx.query('insert into effect (id) values ($1)', [m.id]);
    });
    await relay.start();
    await consumer.start();
    await waitFor(async () => (await count('effect')) === 5, { what: 'five applied' });
    await relay.stop();
    const parked = await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'p', type: 'credit', payload: { n: 9 } }));
    await instance.query(`update zeroloss.outbox set state = 3 where message_id = $1`, [parked.id]);
    ids.push(parked.id);
    board = await startDashboard(
      {
        schema: store.schema,
        store: store.operations,
        deadLetters: store.deadLetters,
        broker: transport.inspector,
        publisher: () => transport.publisher,
      },
      { port: 0, sampleEveryMs: 60_000 },
    );
  });
  after(async () => {
    await board?.close();
    await consumer?.stop();
    await transport.close();
    await store.close();
    await instance.close();
  });

  test('overview, inboxes, a message trail and a release, all on PGlite', async () => {
    type Overview = { outbox: { pending: number; parked: number }; groups: Array<{ group: string; lag: string }> };
    const read = async () => (await (await fetch(`${board.url}/api/overview`)).json()) as Overview;
    // The effects are applied before the group's offsets are committed (on the consumer's commit interval):
    // the lag reaches 0 at that commit, not at the last effect.
    const overview = await waitFor(
      async () => {
        const o = await read();
        return o.groups.find((g) => g.group === 'shipping')?.lag === '0' ? o : undefined;
      },
      { what: "the group's lag at 0 once its offsets are committed" },
    );
    assert.equal(overview.outbox.parked, await count('zeroloss.outbox where state = 3'));
    assert.equal(overview.outbox.parked, 1);
    const inboxes = await (await fetch(`${board.url}/inboxes?group=shipping`)).text();
    for (const id of ids.slice(0, 5)) assert.match(inboxes, new RegExp(`data-id="${id}"`));
    const outbox = await (await fetch(`${board.url}/outbox?state=sent&limit=3`)).text();
    const next = /rel="next" href="([^"]+)"/.exec(outbox)?.[1]?.replaceAll('&#38;', '&');
    assert.ok(next, 'a second page');
    const rest = await (await fetch(`${board.url}${next}`)).text();
    const listed = [...`${outbox}${rest}`.matchAll(/<tr data-id="([^"]+)" data-state="sent"/g)].map((m) => m[1]);
    assert.deepEqual(listed.sort(), ids.slice(0, 5).sort(), 'the five sent rows, each once');
    const trail = await (await fetch(`${board.url}/messages/${ids[0]}`)).text();
    assert.match(trail, /data-stop="complete"/);
    const page = await (await fetch(`${board.url}/parked`)).text();
    const csrf = /name="zeroloss-csrf" content="([^"]+)"/.exec(page)?.[1] ?? '';
    const released = await fetch(`${board.url}/actions/parked/release`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-zeroloss-csrf': csrf },
      body: JSON.stringify({ ids: [ids[5]], reason: 'embedded check' }),
    });
    assert.equal(released.status, 200);
    assert.equal(await count(`zeroloss.outbox where state = 0`), 1);
    assert.equal(await count(`zeroloss.operation_audit where action = 'outbox.release' and reason = 'embedded check'`), 1);
  });
});
