import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StaleVersionError } from '../../../src/consumer/guards/guard-errors.ts';
import { stateColumns } from '../../../src/consumer/guards/state-columns.ts';
import { versionGuard } from '../../../src/consumer/guards/version-guard.ts';
import { freshSchema, inTransaction } from '../../helpers/pg.ts';

const STATES = ['created', 'paid', 'shipped', 'delivered'] as const;

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('out-of-order guards on the real Postgres', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlg');
    await env.pool.query(`create table "${env.schema}".account (id text primary key, version int not null, balance int not null)`);
    await env.pool.query(`create table "${env.schema}".order_view (
      order_id text primary key, status text,
      created_at timestamptz, paid_at timestamptz, shipped_at timestamptz, delivered_at timestamptz,
      amount int, carrier text)`);
  });
  after(() => env.cleanup());

  test('a version-guarded update applies on the expected version only; a stale or early write is a typed, non-retryable refusal', async () => {
    const accounts = versionGuard({ schema: env.schema, table: 'account', key: 'id' });
    await env.pool.query(`insert into "${env.schema}".account values ('a1', 1, 0)`);
    assert.equal(await inTransaction(env.pool, (tx) => accounts.update(tx, { key: 'a1', expected: 1, set: { balance: 10 } })), 2);

    // Two writers that both read version 2: exactly one wins, whatever the interleaving.
    const outcomes = await Promise.allSettled(
      [20, 30].map((balance) => inTransaction(env.pool, (tx) => accounts.update(tx, { key: 'a1', expected: 2, set: { balance } }))),
    );
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    assert.ok(refused.reason instanceof StaleVersionError);
    assert.equal(refused.reason.code, 'ZL_STALE_VERSION');
    assert.equal(refused.reason.retryable, false);
    assert.equal(refused.reason.actual, 3);
    assert.equal(refused.reason.rowBehind, false, 'the row is ahead: the message is stale');

    // The refusal leaves the caller's transaction usable: the handler can catch it and go on writing.
    await inTransaction(env.pool, async (tx) => {
      const early = await accounts.update(tx, { key: 'a1', expected: 7, set: { balance: 99 } }).catch((e: unknown) => e);
      assert.ok(
        early instanceof StaleVersionError && early.rowBehind && early.actual === 3,
        'a version from the future: the row is behind',
      );
      const missing = await accounts.update(tx, { key: 'nope', expected: 1, set: { balance: 1 } }).catch((e: unknown) => e);
      assert.ok(missing instanceof StaleVersionError && missing.actual === null && missing.rowBehind);
      await tx.query(`update "${env.schema}".account set balance = balance + 1 where id = 'a1'`);
    });
    const { rows } = await env.pool.query(`select version, balance from "${env.schema}".account where id = 'a1'`);
    assert.equal(rows[0].version, 3);
    assert.ok([21, 31].includes(rows[0].balance), `one of the racing writes, then +1 (${rows[0].balance})`);
  });

  test('identifiers are validated, never spliced', () => {
    assert.throws(() => versionGuard({ table: 'account; drop table x', key: 'id' }), { code: 'ZL_INVALID_IDENTIFIER' });
    assert.throws(() => stateColumns({ table: 'order_view', key: 'order_id', states: ['Paid'] }), { code: 'ZL_INVALID_IDENTIFIER' });
  });

  test('the wide table converges to the same row from every arrival order of four states, duplicates and concurrency included', async () => {
    const orders = stateColumns({ schema: env.schema, table: 'order_view', key: 'order_id', states: STATES, currentColumn: 'status' });
    const at = (state: string) => new Date(Date.UTC(2026, 0, 1, STATES.indexOf(state as never))).toISOString();
    const values = (state: string) => (state === 'paid' ? { amount: 12 } : state === 'shipped' ? { carrier: 'ups' } : undefined);
    const orders24 = permutations(STATES);
    assert.equal(orders24.length, 24);
    for (const [n, order] of orders24.entries()) {
      const key = `p${n}`;
      const seen: string[] = [];
      for (const state of order) {
        const { state: current } = await inTransaction(env.pool, (tx) =>
          orders.record(tx, { key, state, at: at(state), values: values(state) }),
        );
        seen.push(current);
      }
      // The derived state is the furthest one present so far.
      const furthest = order.map((_, i) => STATES[Math.max(...order.slice(0, i + 1).map((s) => STATES.indexOf(s)))]);
      assert.deepEqual(seen, furthest, `order ${order.join(',')}`);
      // A redelivered state changes nothing, even with another value.
      await inTransaction(env.pool, (tx) =>
        orders.record(tx, { key, state: order[0] as string, at: new Date().toISOString(), values: values(order[0] as string) }),
      );
    }
    // All four at once, each in its own transaction: the concurrent inserts meet in the upsert.
    await Promise.all(
      ['c1', 'c2', 'c3'].flatMap((key) =>
        STATES.map((state) => inTransaction(env.pool, (tx) => orders.record(tx, { key, state, at: at(state), values: values(state) }))),
      ),
    );
    const { rows } = await env.pool.query(
      `select status, created_at, paid_at, shipped_at, delivered_at, amount, carrier, count(*)::int as n
       from "${env.schema}".order_view group by 1, 2, 3, 4, 5, 6, 7`,
    );
    assert.equal(rows.length, 1, `every key has the same row: ${JSON.stringify(rows)}`);
    assert.equal(rows[0].n, 27);
    assert.equal(rows[0].status, 'delivered');
    assert.equal(rows[0].paid_at.toISOString(), at('paid'));
    assert.equal(rows[0].amount, 12);
    assert.equal(rows[0].carrier, 'ups');

    const partial = await inTransaction(env.pool, (tx) => orders.record(tx, { key: 'early', state: 'paid', at: at('paid') }));
    assert.equal(partial.state, 'paid', '"paid" before "created" is recorded, not refused');
    await assert.rejects(
      inTransaction(env.pool, (tx) => orders.record(tx, { key: 'early', state: 'refunded', at: at('paid') })),
      { code: 'ZL_INVALID_PAYLOAD' },
    );
  });
});
