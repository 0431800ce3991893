/**
 * The application process of the embedded host-kill test (host-kill.test.ts): it opens zeroloss embedded on a
 * file-backed PGlite in ZL_DIR and commits business transactions (an order row and its message) as fast as it
 * can, telling the parent each id after its commit returned, until the parent SIGKILLs it mid-write.
 *
 *   ZL_DIR   the PGlite data directory (shared by every life)
 *   ZL_LIFE  this process's number: its producer id and the ids it writes
 */
import { pglite } from '../../../src/entry/pglite.ts';
import { createOutbox } from '../../../src/index.ts';

const dir = process.env.ZL_DIR;
const life = process.env.ZL_LIFE;
if (!dir || !life) throw new Error('host-writer: ZL_DIR and ZL_LIFE must be set');

const store = pglite(dir);
await store.migrate();
await store.db.query('create table if not exists public.orders (id text primary key, life integer not null)');
const outbox = createOutbox({ store, producerId: `host-${life}` });
process.send?.({ kind: 'ready' });
for (let i = 0; ; i++) {
  const id = `${life}-${i}`;
  await store.transaction(async (tx) => {
    await tx.query('insert into public.orders (id, life) values ($1, $2)', [id, Number(life)]);
    await outbox.enqueue(tx, { topic: 'orders', key: `k${i % 7}`, type: 'order.placed', payload: { id } });
  });
  process.send?.({ kind: 'committed', id });
}
