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

/** A business table `name` (id, key u_id, mq_state) in the test schema, and a state-column source over it. */
async function keyedTable(name: string): Promise<StateColumnSource<{ id: number; u_id: string }>> {
  const s = env.schema;
  await env.db.query(
    `create table "${s}".${name} (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  return new StateColumnSource<{ id: number; u_id: string }>(env.db, {
    name: `${name}_check`,
    table: name,
    tableSchema: s,
    schema: s,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    toMessage: (r) => ({ topic: name, key: r.u_id, type: name, payload: { id: r.id } }),
  });
}

// Concurrent inserts from several connections leave a table's physical order different from its id
// order. The claim must still hand rows to the relay in id order, or one key's rows are published out
// of order (the relay sends them as returned). Rows here are stored in reverse id order outright.
test('a state-column claim returns rows in id order whatever their physical order', async () => {
  const s = env.schema;
  const source = await keyedTable('award');
  await env.db.query(`insert into "${s}".award (id, u_id) select g, 'u' || (g % 7) from generate_series(2000, 1, -1) g`);
  await env.db.query(`analyze "${s}".award`);
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
  const source = await keyedTable('race');
  await env.db.query(`insert into "${s}".race (u_id) select 'u' || g from generate_series(1, 3000) g`);
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

// A claim locks the oldest free rows and keeps those no earlier row of their key holds back. When keys held
// by a parked row, a row in its retry delay or a live lease have a claim's worth of free rows, those fill the
// whole window: before, the claim then returned nothing for every key as long as the holds lasted.
test("keys held back with a claim's worth of rows or more behind them do not hide the other keys' rows", async () => {
  const s = env.schema;
  const source = await keyedTable('held');
  const keys = ['parked', 'waiting', 'leased'];
  await env.db.query(`insert into "${s}".held (u_id) select unnest($1::text[])`, [keys]);
  await env.db.query(`insert into "${s}".held (u_id) select k from unnest($1::text[]) k, generate_series(1, 6)`, [keys]);
  await env.db.query(`insert into "${s}".held (u_id) values ('other')`);
  const first = await source.claim('relay-a', 3, 60_000);
  assert.deepEqual(
    first.map((r) => r.record.key),
    keys,
  );
  const ref = (key: string) => first.find((r) => r.record.key === key)?.ref as string;
  await source.markFailed('relay-a', [
    { ref: ref('parked'), error: 'poison', action: 'park', delayMs: 0, charge: true },
    { ref: ref('waiting'), error: 'x', action: 'retry', delayMs: 60_000, charge: true },
  ]);
  const claimed = await source.claim('relay-b', 5, 60_000);
  assert.deepEqual(
    claimed.map((r) => r.record.key),
    ['other'],
  );
  assert.deepEqual(await source.claim('relay-b', 5, 60_000), [], 'a row was claimed past its key’s holder');
});
