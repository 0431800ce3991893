import postgresJs from 'postgres';
import { fromPostgresJs } from '../../../src/entry/postgres-js.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('postgres-js', async ({ schema, url }) => {
  const sql = postgresJs(url, { max: 2, onnotice: () => {} });
  return {
    transaction: (body) =>
      sql.begin((tx) =>
        body({
          executor: fromPostgresJs(tx),
          insertOrder: async (id) => {
            await tx`insert into ${tx(schema)}.orders (id) values (${id})`;
          },
        }),
      ) as never,
    close: () => sql.end(),
  };
});
