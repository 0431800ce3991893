import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { StateColumnSource } from '../../src/adapters/postgres/state-column-source.ts';
import { freshSchema } from '../helpers/pg.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlsco');
});
after(async () => {
  await env.cleanup();
});

// Concurrent inserts from several connections leave a table's physical order different from its id
// order. The claim must still hand rows to the relay in id order, or one key's rows are published out
// of order (the relay sends them as returned). Rows here are stored in reverse id order outright.
test('a state-column claim returns rows in id order whatever their physical order', async () => {
  const s = env.schema;
  await env.db.query(
    `create table "${s}".award (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  await env.db.query(`insert into "${s}".award (id, u_id) select g, 'u' || (g % 7) from generate_series(2000, 1, -1) g`);
  await env.db.query(`analyze "${s}".award`);
  const source = new StateColumnSource<{ id: number; u_id: string }>(env.db, {
    name: 'order_check',
    table: 'award',
    tableSchema: s,
    schema: s,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    toMessage: (r) => ({ topic: 'awards', key: r.u_id, type: 'award', payload: { id: r.id } }),
  });
  const claimed = await source.claim('relay-a', 500, 60_000);
  assert.equal(claimed.length, 500);
  const ids = claimed.map((r) => Number(r.ref));
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => a - b),
    'claimed rows out of id order',
  );
});

// The lease of a state-column row lives in source_row, not in the business row the claim locks. Claimers
// racing on the same rows must still never both get one: run many concurrent claims and count.
test('concurrent state-column claims never hand one row to two claimers', async () => {
  const s = env.schema;
  await env.db.query(
    `create table "${s}".race (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  await env.db.query(`insert into "${s}".race (u_id) select 'u' || g from generate_series(1, 3000) g`);
  const source = new StateColumnSource<{ id: number; u_id: string }>(env.db, {
    name: 'race_check',
    table: 'race',
    tableSchema: s,
    schema: s,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    toMessage: (r) => ({ topic: 'races', key: r.u_id, type: 'race', payload: { id: r.id } }),
  });
  const owners = new Map<string, string>();
  let doubles = 0;
  await Promise.all(
    Array.from({ length: 6 }, (_, w) =>
      (async () => {
        for (;;) {
          const rows = await source.claim(`relay-${w}`, 50, 60_000);
          if (rows.length === 0) return;
          for (const r of rows) {
            if (owners.has(r.ref)) doubles++;
            owners.set(r.ref, `relay-${w}`);
          }
        }
      })(),
    ),
  );
  assert.equal(owners.size, 3000, 'every row claimed');
  assert.equal(doubles, 0, 'no row claimed twice while its lease held');
});
