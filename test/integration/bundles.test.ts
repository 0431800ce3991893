import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { createConsumer, createOutbox, createRelay } from '../../src/index.ts';
import { kafka } from '../../src/entry/kafka.ts';
import { pglite } from '../../src/entry/pglite.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { KAFKA_BROKERS, uniqueTopic } from '../helpers/kafka.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

test('postgres + kafka bundles: a message committed with the business row is relayed and applied once', async () => {
  const schema = uniqueName('zlb');
  const topic = uniqueTopic('bundle');
  const store = postgres(PG_URL, { schema });
  const transport = kafka({ brokers: KAFKA_BROKERS });
  try {
    await store.migrate();
    assert.deepEqual((await store.migrate()).applied, [], 'a second migrate applies nothing');
    assert.deepEqual(await transport.ensureTopic(topic, 3), { created: true, partitions: 3 });
    assert.equal((await transport.ensureTopic(topic, 3)).created, false);
    await store.db.query(`create table ${schema}.effect (id text primary key)`);
    const outbox = createOutbox({ store, producerId: 'bundle-test' });
    await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k', type: 'thing.done', payload: { id: 'a' } }));
    const relay = createRelay({ store, transport });
    const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: [topic] });
    consumer.handle<{ id: string }>('thing.done', async (message, { tx }) => {
      await tx.query(`insert into ${schema}.effect (id) values ($1)`, [message.payload.id]);
    });
    await relay.start();
    await consumer.start();
    try {
      await waitFor(async () => (await store.db.query(`select 1 from ${schema}.effect`)).rows.length === 1, { timeoutMs: 30_000 });
      assert.equal(relay.health().running, true);
    } finally {
      await consumer.stop();
      await relay.stop();
    }
  } finally {
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  }
});

test('pglite + tableLog bundles: the embedded default end to end, and close leaves a PGlite it did not make open', async () => {
  const instance = new PGlite();
  const store = pglite(instance);
  const transport = tableLog(store);
  await store.migrate();
  await transport.ensureTopic('orders', 2);
  await instance.query('create table effect (id text primary key)');
  const outbox = createOutbox({ store, producerId: 'embedded' });
  await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'u', type: 'order.placed', payload: { id: 'o-1' } }));
  const relay = createRelay({ store, transport });
  const consumer = createConsumer({ store, transport, groupId: 'shipping', topics: ['orders'] });
  consumer.handle<{ id: string }>('order.placed', async (message, { tx }) => {
    await tx.query('insert into effect (id) values ($1)', [message.payload.id]);
  });
  await relay.start();
  await consumer.start();
  await waitFor(async () => (await instance.query('select 1 from effect')).rows.length === 1, { timeoutMs: 20_000 });
  await consumer.stop();
  await relay.stop();
  await transport.close();
  await store.close();
  assert.equal((await instance.query<{ n: number }>('select 1 as n')).rows[0]?.n, 1, 'the application still uses its PGlite');
  await instance.close();
});

test('postgres(pool) leaves the application pool open on close; postgres(url) ends its own', async () => {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const store = postgres(pool);
  await store.db.query('select 1');
  await store.close();
  assert.equal((await pool.query('select 1 as n')).rows[0].n, 1);
  await pool.end();
  const own = postgres(PG_URL);
  await own.db.query('select 1');
  await own.close();
  await assert.rejects(own.db.query('select 1'));
});

test('bundles and features refuse bad options with a typed error naming the field', () => {
  const bad = (fn: () => unknown, field: string) =>
    assert.throws(fn, (e: { code?: string; details?: { field?: string } }) => {
      assert.equal(e.code, 'ZL_INVALID_CONFIG');
      assert.equal(e.details?.field, field);
      return true;
    });
  bad(() => kafka({ brokers: [] }), 'brokers');
  bad(() => kafka({ brokers: ['x:1'] }).transactionalProcessor({ tls: true } as never, async () => []), 'tls');
  bad(() => kafka({ brokers: ['x:1'], brokerz: 1 } as never), 'brokerz');
  bad(() => postgres(''), 'pool');
  bad(() => postgres({} as never), 'pool');
  bad(() => postgres(PG_URL, { shema: 'x' } as never), 'shema');
  bad(() => pglite(42 as never), 'dir');
  bad(() => tableLog(undefined as never), 'store');
  bad(() => createOutbox({} as never), 'store');
  bad(() => createRelay({ store: undefined } as never), 'store');
  const store = postgres(PG_URL);
  bad(() => createRelay({ store } as never), 'transport');
  bad(() => createConsumer({ store, groupId: 'g', topics: ['t'] } as never), 'transport');
  assert.throws(() => kafka({ brokers: ['x:1'], publisher: { compression: 'rar' } } as never), { code: 'ZL_INVALID_CONFIG' });
  return store.close();
});
