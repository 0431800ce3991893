import { after } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import { postgresStore } from '../../src/adapters/postgres/postgres-store.ts';
import { storeConformance } from './store-conformance.ts';

// One in-memory PGlite for the file (starting one takes seconds); every test gets a schema of its own in
// it, left for the instance to take with it when it closes. Tests run one at a time: PGlite runs one
// statement at a time anyway, and a test's "not before the delay" checks must not queue behind another's.
let shared: Promise<PGlite> | undefined;
const instance = () => {
  shared ??= PGlite.create();
  return shared;
};

after(async () => {
  if (shared) await (await shared).close();
});

storeConformance('PGlite', async ({ schema, notify }) => {
  const store = postgresStore(pgliteDatabase(await instance()), { schema, notify, kind: 'pglite' });
  return { store, close: () => store.close() };
});
