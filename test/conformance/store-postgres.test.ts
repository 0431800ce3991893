import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { postgresStore } from '../../src/adapters/postgres/postgres-store.ts';
import { PG_URL } from '../helpers/pg.ts';
import { storeConformance } from './store-conformance.ts';

// A pool of its own per test, as `postgres(url)` makes one; the store closes it. Tests run four at a time:
// each has a schema of its own, and most of a test's time is the server migrating and dropping it.
storeConformance(
  'Postgres',
  async ({ schema, notify }) => {
    const store = postgresStore(pgDatabase({ connectionString: PG_URL, max: 5 }), { schema, notify });
    return {
      store,
      async close() {
        await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
        await store.close();
      },
    };
  },
  { concurrency: 4 },
);
