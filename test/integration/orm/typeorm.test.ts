import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataSource } from 'typeorm';
import { fromTypeorm } from '../../../src/entry/typeorm.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('typeorm', async ({ schema, url }) => {
  const dataSource = new DataSource({ type: 'postgres', url, poolSize: 2 });
  await dataSource.initialize();
  return {
    transaction: (body) =>
      dataSource.transaction((manager) =>
        body({
          executor: fromTypeorm(manager),
          insertOrder: async (id) => {
            await manager.createQueryBuilder().insert().into(`${schema}.orders`, ['id']).values({ id }).execute();
          },
        }),
      ),
    // A query runner with no transaction started: its statements would each commit on their own.
    outsideTransaction: () => fromTypeorm(dataSource.createQueryRunner()),
    close: () => dataSource.destroy(),
  };
});

test('typeorm: a query runner in a transaction works too; the global manager (no transaction) is refused', async () => {
  const dataSource = new DataSource({
    type: 'postgres',
    url: process.env.ZL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    poolSize: 1,
  });
  await dataSource.initialize();
  try {
    assert.throws(() => fromTypeorm(dataSource.manager), { code: 'ZL_INVALID_CONFIG' });
    const runner = dataSource.createQueryRunner();
    await runner.startTransaction();
    const { rows } = await fromTypeorm(runner).query<{ a: string; again: string }>('select $1::text as a, $1::text as again', ['x']);
    assert.deepEqual(rows, [{ a: 'x', again: 'x' }]);
    await runner.rollbackTransaction();
    await runner.release();
  } finally {
    await dataSource.destroy();
  }
});
