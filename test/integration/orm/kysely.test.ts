import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { fromKysely } from '../../../src/entry/kysely.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('kysely', async ({ schema, url }) => {
  const db = new Kysely<Record<string, { id: string }>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }),
  });
  return {
    transaction: (body) =>
      db.transaction().execute((trx) =>
        body({
          executor: fromKysely(trx),
          insertOrder: async (id) => {
            await trx.withSchema(schema).insertInto('orders').values({ id }).execute();
          },
        }),
      ),
    close: () => db.destroy(),
  };
});
