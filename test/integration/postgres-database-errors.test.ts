import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';

const codeOf = (error: unknown) => (error as { code?: unknown }).code;

describe('the Postgres Database classifies its own failures into our codes', () => {
  let pool: pg.Pool;
  const table = uniqueName('zlt_errors');
  before(async () => {
    pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
    pool.on('error', () => {});
    await pool.query(`create table "${table}" (id int primary key)`);
  });
  after(async () => {
    await pool.query(`drop table if exists "${table}"`);
    await pool.end();
  });

  test('a server that cannot be reached: query and transaction reject with ZL_STORE_UNAVAILABLE', async () => {
    // Port 1 refuses at once on this machine; the pool gives up on the first attempt.
    const db = pgDatabase({ connectionString: 'postgres://postgres@127.0.0.1:1/test', max: 1 });
    try {
      for (const attempt of [() => db.query('select 1'), () => db.transaction(async () => 1)]) {
        await assert.rejects(attempt(), (error: unknown) => {
          assert.ok(error instanceof ZerolossError);
          assert.equal(error.code, 'ZL_STORE_UNAVAILABLE');
          assert.equal(error.retryable, true);
          assert.equal(codeOf(error.cause), 'ECONNREFUSED');
          return true;
        });
      }
    } finally {
      await db.close();
    }
  });

  test("a statement run through the transaction's tx is classified too: the connection killed is ZL_STORE_UNAVAILABLE", async () => {
    const db = pgDatabase({ pool });
    await assert.rejects(
      db.transaction((tx) => tx.query('select pg_terminate_backend(pg_backend_pid())')),
      (error: unknown) => codeOf(error) === 'ZL_STORE_UNAVAILABLE' && codeOf((error as Error).cause) === '57P01',
    );
  });

  test('a lock not available (55P03) inside the transaction is ZL_STORE_CONFLICT; a unique violation keeps its SQLSTATE', async () => {
    const db = pgDatabase({ pool });
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      await holder.query(`lock table "${table}" in access exclusive mode`);
      await assert.rejects(
        db.transaction((tx) => tx.query(`lock table "${table}" in access exclusive mode nowait`)),
        (error: unknown) => {
          assert.ok(error instanceof ZerolossError);
          assert.equal(error.code, 'ZL_STORE_CONFLICT');
          assert.equal(error.retryable, true);
          assert.equal(codeOf(error.cause), '55P03');
          return true;
        },
      );
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    await db.query(`insert into "${table}" (id) values (1)`);
    await assert.rejects(db.query(`insert into "${table}" (id) values (1)`), (error: unknown) => codeOf(error) === '23505');
    await assert.rejects(
      db.transaction((tx) => tx.query(`insert into "${table}" (id) values (1)`)),
      (error: unknown) => codeOf(error) === '23505',
    );
  });

  test("tx is still the pool's client: named prepared statements run through it", async () => {
    const db = pgDatabase({ pool });
    const rows = await db.transaction(async (tx) => {
      const client = tx as unknown as pg.PoolClient;
      await client.query({ name: uniqueName('zl_test'), text: 'select $1::int as n', values: [7] });
      return (await client.query({ name: 'zl_test_second', text: 'select $1::int as n', values: [8] })).rows;
    });
    assert.deepEqual(rows, [{ n: 8 }]);
  });
});

test('PGlite: a statement after a caught failure in the same transaction is ZL_TRANSACTION_ROLLED_BACK', async () => {
  const db = pgliteDatabase(new PGlite(), { closeOnClose: true });
  try {
    await db.query('create table t (id int primary key)');
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('insert into t values (1)');
        await tx.query('insert into t values (1)').catch(() => {});
        await tx.query('select 1');
      }),
      (error: unknown) => codeOf(error) === 'ZL_TRANSACTION_ROLLED_BACK' && codeOf((error as Error).cause) === '25P02',
    );
    await assert.rejects(db.query('insert into t values (1), (1)'), (error: unknown) => codeOf(error) === '23505');
  } finally {
    await db.close();
  }
});
