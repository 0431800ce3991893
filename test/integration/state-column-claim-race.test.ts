import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, test } from 'node:test';
import { StateColumnSource } from '../../src/adapters/postgres/state-column-source.ts';
import { freshSchema } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlscr');
});
after(async () => {
  await env.cleanup();
});

type Award = { id: number; u_id: string };

function source(table: string, name: string): StateColumnSource<Award> {
  return new StateColumnSource<Award>(env.db, {
    name,
    table,
    tableSchema: env.schema,
    schema: env.schema,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    toMessage: (r) => ({ topic: 'awards', key: r.u_id, type: 'award', payload: { id: r.id } }),
  });
}

/**
 * The schedule that reordered a key: claimer Y's statement takes its snapshot, then claimer X claims award
 * A1 and commits, then Y locks A1 (free again: X's lease lives in source_row, not in the award row) and
 * the later award A2 of the same key. Y must not come away holding A2 while X holds A1, or A2 can reach
 * the topic first (A1's send fails, or X's relay dies).
 *
 * Y reads the awards through a view whose filter waits on an advisory lock the test holds, so Y's
 * statement stops after taking its snapshot and before locking any row, for exactly as long as the test
 * says; X reads the table itself. Both are one source (one name, one bookkeeping).
 */
async function forcedRace(name: string, earlierAttempt: boolean): Promise<{ x: string[]; y: string[] }> {
  const s = `"${env.schema}"`;
  const lockKey = randomInt(1, 2 ** 31 - 1);
  await env.db.query(
    `create table ${s}.${name} (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  await env.db.query(`create function ${s}.${name}_gate() returns boolean language plpgsql volatile as $$
    begin perform pg_advisory_lock_shared(${lockKey}); perform pg_advisory_unlock_shared(${lockKey}); return true; end $$`);
  await env.db.query(`create view ${s}.${name}_gated as select * from ${s}.${name} where ${s}.${name}_gate()`);
  await env.db.query(`insert into ${s}.${name} (u_id) values ('user-1'), ('user-1')`);
  const x = source(name, name);
  const y = source(`${name}_gated`, name);
  if (earlierAttempt) {
    // A1 failed once and is due again: its bookkeeping row exists and is free in every snapshot.
    const first = await x.claim('relay-old', 1, 60_000);
    assert.deepEqual(
      first.map((r) => r.ref),
      ['1'],
    );
    await x.markFailed('relay-old', [{ ref: '1', error: 'broker said no', action: 'retry', delayMs: 0, charge: true }]);
  }

  const gate = await env.pool.connect();
  try {
    await gate.query('select pg_advisory_lock($1)', [lockKey]);
    const yClaim = y.claim('relay-y', 10, 60_000);
    yClaim.catch(() => {});
    await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `select 1 from pg_locks where locktype = 'advisory' and not granted and classid = 0 and objid = $1`,
          [lockKey],
        );
        return rows.length > 0;
      },
      { what: "claimer Y's statement waiting at the gate", timeoutMs: 10_000 },
    );
    const xRows = await x.claim('relay-x', 1, 60_000);
    await gate.query('select pg_advisory_unlock($1)', [lockKey]);
    const yRows = await yClaim;
    return { x: xRows.map((r) => r.ref), y: yRows.map((r) => r.ref) };
  } finally {
    await gate.query('select pg_advisory_unlock_all()').catch(() => {});
    gate.release();
  }
}

test('a claim whose snapshot predates another claim of a key never takes that key’s later row', async () => {
  const outcomes = [await forcedRace('fresh_award', false), await forcedRace('retried_award', true)];
  // X holds A1 in both; Y, which must not take A2 while A1 is held, comes away with nothing.
  assert.deepEqual(outcomes, [
    { x: ['1'], y: [] },
    { x: ['1'], y: [] },
  ]);
});

// The other way a row can change between the claim's snapshot and its lease: the holder of an expired
// lease records its release (with a backoff) while the claim waits for that row. The claim's upsert then
// refuses the row; the later row of its key must not be claimed alone. A test transaction plays the
// lease holder and holds the bookkeeping row until the claim is waiting for it.
test('a claim that finds an earlier row of a key changed under it claims none of that key', async () => {
  const s = `"${env.schema}"`;
  await env.db.query(
    `create table ${s}.released_award (id bigserial primary key, u_id text not null, mq_state smallint not null default 0, modified_time timestamptz not null default now())`,
  );
  await env.db.query(`insert into ${s}.released_award (u_id) values ('user-1'), ('user-1')`);
  const x = source('released_award', 'released_award');
  const y = source('released_award', 'released_award');
  // X claims A1 with a lease that has already run out, so Y may take it over.
  assert.deepEqual(
    (await x.claim('relay-x', 1, 0)).map((r) => r.ref),
    ['1'],
  );
  const holder = await env.pool.connect();
  try {
    await holder.query('begin');
    await holder.query(
      `update ${s}.source_row set lease_owner = null, lease_until = null, next_attempt_at = now() + interval '1 hour'
       where source = 'released_award' and row_id = '1'`,
    );
    const yClaim = y.claim('relay-y', 10, 60_000);
    yClaim.catch(() => {});
    await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%with cand as%' and query like $1`,
          [`%${env.schema}%`],
        );
        return rows.length > 0;
      },
      { what: "claimer Y's upsert waiting for A1's bookkeeping row", timeoutMs: 10_000 },
    );
    await holder.query('commit');
    assert.deepEqual(
      (await yClaim).map((r) => r.ref),
      [],
      'Y must not claim A2 while A1 waits for its retry',
    );
  } finally {
    await holder.query('rollback').catch(() => {});
    holder.release();
  }
});
