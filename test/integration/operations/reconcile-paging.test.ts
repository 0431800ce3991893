import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { postgres } from '../../../src/entry/postgres.ts';
import { createOutbox } from '../../../src/index.ts';
import { reconcile } from '../../../src/operations/reconcile.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';

// Rows of one transaction share created_at to the microsecond. The page cursor once carried it as a JS Date
// (milliseconds), so every later page started again at the first row after that millisecond: reconcile of a
// window holding a transaction of at least one page of rows never ended (found by the dashboard's paging).
let env: Awaited<ReturnType<typeof freshSchema>>;
let store: ReturnType<typeof postgres>;
before(async () => {
  env = await freshSchema('zlrpage');
  store = postgres(PG_URL, { schema: env.schema });
});
after(async () => {
  await store?.close();
  await env?.cleanup();
});

test('reconcile pages through a transaction larger than a page: every row once, and it ends', async () => {
  const outbox = createOutbox({ store, producerId: 'paging' });
  const ids = await store.transaction(async (tx) => {
    const out: string[] = [];
    for (let i = 0; i < 12; i++) out.push((await outbox.enqueue(tx, { topic: 'orders', key: `k${i}`, type: 't', payload: i })).id);
    return out;
  });
  const seen: string[] = [];
  let next: Parameters<typeof store.operations.outboxWindow>[2];
  const window = { from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000) };
  for (let pages = 0; pages < 10; pages++) {
    const page = await store.operations.outboxWindow(window, undefined, next, 5);
    seen.push(...page.map((r) => r.messageId));
    if (page.length < 5) break;
    next = page[page.length - 1]?.cursor;
  }
  assert.deepEqual(seen, ids, 'each row once, in commit order');
  const report = await reconcile({ store: store.operations, broker: undefined }, window, { pageSize: 5, dryRun: true });
  assert.equal(report.counts.committed, 12);
});
