import { drizzle } from 'drizzle-orm/postgres-js';
import postgresJs from 'postgres';
import { drizzleHarness } from './drizzle-harness.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('drizzle-postgres-js', async ({ schema, url }) => {
  const client = postgresJs(url, { max: 2, onnotice: () => {} });
  return drizzleHarness(drizzle(client), schema, () => client.end());
});
