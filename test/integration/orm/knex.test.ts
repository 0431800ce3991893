import assert from 'node:assert/strict';
import { test } from 'node:test';
import knexFactory from 'knex';
import { toKnexBindings } from '../../../src/adapters/orm/from-knex.ts';
import { fromKnex } from '../../../src/entry/knex.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('knex', async ({ schema, url }) => {
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 2 } });
  return {
    transaction: (body) =>
      knex.transaction((trx) =>
        body({
          executor: fromKnex(trx),
          insertOrder: async (id) => {
            await trx.withSchema(schema).insert({ id }).into('orders');
          },
        }),
      ),
    outsideTransaction: () => fromKnex(knex),
    close: () => knex.destroy(),
  };
});

test('knex: $n become ? in order, a repeated $n repeats its value, a literal ? reaches Postgres as ?', async () => {
  const { sql, bindings } = toKnexBindings("select $2 as b, $1 as a, $2 as b2, '?' as q, $3::jsonb ? 'k' as has", ['A', 'B', '{"k":1}']);
  assert.equal(sql, "select ? as b, ? as a, ? as b2, '\\?' as q, ?::jsonb \\? 'k' as has");
  assert.deepEqual(bindings, ['B', 'A', 'B', '{"k":1}']);
  const knex = knexFactory({
    client: 'pg',
    connection: process.env.ZL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    pool: { min: 0, max: 1 },
  });
  try {
    const { rows } = await knex.transaction((trx) =>
      fromKnex(trx).query("select $2 as b, $1 as a, $2 as b2, '?' as q, $3::jsonb ? 'k' as has", ['A', 'B', '{"k":1}']),
    );
    assert.deepEqual(rows, [{ b: 'B', a: 'A', b2: 'B', q: '?', has: true }]);
  } finally {
    await knex.destroy();
  }
});
