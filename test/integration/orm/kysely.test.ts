import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { fromKysely } from '../../../src/entry/kysely.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('kysely', async ({ schema, url }) => {
  // CamelCasePlugin renames result columns (snake_case to camelCase), raw queries' too: the enqueue's
  // columns must survive it (it once read every enqueue as a duplicate message id).
  const db = new Kysely<Record<string, { id: string }>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }),
    plugins: [new CamelCasePlugin()],
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
    outsideTransaction: () => fromKysely(db),
    close: () => db.destroy(),
  };
});
