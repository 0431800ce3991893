import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import { uniqueName } from '../helpers/pg.ts';
import { FAST_GROUP } from '../helpers/table-log.ts';
import { transportConformance } from './transport-conformance.ts';

// One file-backed PGlite for the whole file (its first start runs initdb, which takes seconds); every
// test gets a schema of its own in it.
let shared: Promise<{ pglite: PGlite; dir: string }> | undefined;
const open = () => {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zl-pglite-'));
    const pglite = new PGlite(dir);
    await pglite.waitReady;
    return { pglite, dir };
  })();
  return shared;
};

after(async () => {
  if (!shared) return;
  const { pglite, dir } = await shared;
  await pglite.close();
  await rm(dir, { recursive: true, force: true });
});

transportConformance('table log on PGlite (file-backed)', async () => {
  const { pglite } = await open();
  const db = pgliteDatabase(pglite);
  const schema = uniqueName('zltl');
  await migrate(db, schema);
  const admin = new TableLogAdmin(db, { schema });
  return {
    publisher: new TableLogPublisher(db, { schema }),
    subscriber: new TableLogSubscriber(db, { schema, ...FAST_GROUP }),
    async createTopic(topic, partitions) {
      await admin.createTopic(topic, partitions);
    },
    async cleanup() {
      await db.query(`drop schema if exists "${schema}" cascade`);
    },
  };
});
