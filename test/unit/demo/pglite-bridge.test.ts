import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { bridgedDatabase } from '../../../src/demo/bridged-database.ts';
import { PgliteSession } from '../../../src/demo/pglite-host.ts';
import { waitFor } from '../../helpers/wait-for.ts';

// The demo's bridge between worker threads and the main thread's PGlite, with both ends in this thread:
// the protocol is the same, and a dropped session stands for a killed worker.
describe('PGlite bridge', () => {
  let pglite: PGlite;
  before(async () => {
    pglite = new PGlite();
    await pglite.exec('create table t (id int primary key, note text, data bytea)');
  });
  after(async () => {
    await pglite.close();
  });

  const connect = () => {
    const { port1, port2 } = new MessageChannel();
    const session = new PgliteSession(pglite, port1);
    return { session, db: bridgedDatabase(port2), close: () => port2.close() };
  };
  const count = async () => Number((await pglite.query<{ n: number }>('select count(*)::int as n from t')).rows[0]?.n);

  test('runs statements and commits a transaction; bytea comes back as a Buffer', async () => {
    const c = connect();
    await c.db.transaction(async (tx) => {
      await tx.query('insert into t (id, note, data) values ($1, $2, $3)', [1, 'one', Buffer.from([0, 255])]);
      await tx.query('insert into t (id, note) values ($1, $2)', [2, 'two']);
    });
    const { rows } = await c.db.query<{ data: Buffer }>('select data from t where id = 1');
    assert.ok(Buffer.isBuffer(rows[0]?.data));
    assert.deepEqual([...(rows[0]?.data ?? [])], [0, 255]);
    assert.equal(await count(), 2);
    c.close();
  });

  test('a transaction that throws is rolled back and the error carries the SQLSTATE', async () => {
    const c = connect();
    await assert.rejects(
      c.db.transaction(async (tx) => {
        await tx.query('insert into t (id) values (10)');
        await tx.query('insert into t (id) values (1)'); // duplicate key
      }),
      (error: Error & { code?: string }) => error.code === '23505',
    );
    assert.equal((await pglite.query('select 1 from t where id = 10')).rows.length, 0);
    c.close();
  });

  test('dropping a session rolls its open transaction back and frees the connection', async () => {
    const c = connect();
    let inserted: () => void = () => {};
    const reached = new Promise<void>((resolve) => {
      inserted = resolve;
    });
    const stuck = c.db.transaction(async (tx) => {
      await tx.query('insert into t (id, note) values (20, $1)', ['never committed']);
      inserted();
      await new Promise(() => {}); // the worker is killed here, mid-transaction
    });
    void stuck.catch(() => {});
    await reached;
    c.session.drop();
    // PGlite is usable again (the transaction held its only connection) and the row is gone.
    await waitFor(async () => (await pglite.query('select 1 from t where id = 20')).rows.length === 0, { what: 'rollback' });
    assert.equal(await count(), 2);
  });

  test('notifications reach a listener on the other side', async () => {
    const c = connect();
    const seen: string[] = [];
    const unlisten = await c.db.listen('bridge_test', (payload) => seen.push(payload));
    await pglite.query(`select pg_notify('bridge_test', 'hello')`);
    await waitFor(() => seen.includes('hello'), { what: 'notification' });
    await unlisten();
    c.close();
  });
});
