import postgresJs from 'postgres';
import { fromPostgresJs } from '../../../src/entry/postgres-js.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('postgres-js', async ({ schema, url }) => {
  // transform: postgres.camel renames every result column, unsafe() ones too: the enqueue's columns must
  // survive it (it once read every enqueue as a duplicate message id).
  const sql = postgresJs(url, { max: 2, onnotice: () => {}, transform: postgresJs.camel });
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
    outsideTransaction: () => fromPostgresJs(sql),
    close: () => sql.end(),
  };
});
