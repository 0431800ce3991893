import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { drizzleHarness } from './drizzle-harness.ts';
import { ormSuite } from './orm-suite.ts';

ormSuite('drizzle-node-postgres', async ({ schema, url }) => {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  return drizzleHarness(drizzle(pool), schema, () => pool.end());
});
