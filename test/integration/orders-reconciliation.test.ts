import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { applyDeduction } from '../../src/examples/orders/order-deduction.ts';
import { reconcileOrders } from '../../src/examples/orders/order-reconciliation.ts';
import type { OrderPlaced } from '../../src/examples/orders/order-service.ts';
import { orderSql, SERVICES } from '../../src/examples/orders/order-sql.ts';
import { createOrderTables, openHolders } from '../../src/examples/orders/order-tables.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import { freshSchema } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * The business reconciliation of the order fan-out example on the real Postgres, without any messaging:
 * it compares business rows only, and its repair goes through the services' own once-only deduction.
 */
describe('order fan-out: business reconciliation', () => {
  let fresh: Awaited<ReturnType<typeof freshSchema>>;
  let db: Database;
  let schema: string;
  let seq = 0;

  before(async () => {
    fresh = await freshSchema('zlt_orders');
    db = fresh.db;
    schema = fresh.schema;
    await createOrderTables(db, schema);
    await openHolders(db, schema, 'inventory', ['sku-1'], 1_000);
    await openHolders(db, schema, 'budget', ['c1', 'c2'], 100_000);
    await openHolders(db, schema, 'points', ['c1', 'c2'], 10_000);
  });
  after(() => fresh.cleanup());

  async function place(count: number): Promise<OrderPlaced[]> {
    const placed: OrderPlaced[] = [];
    for (let i = 0; i < count; i++) {
      const o: OrderPlaced = { orderId: `o-${++seq}`, customerId: i % 2 ? 'c1' : 'c2', sku: 'sku-1', quantity: 1, amount: 10, points: 5 };
      await db.query(orderSql(schema).insertOrder, [o.orderId, o.customerId, o.sku, o.quantity, o.amount, o.points]);
      placed.push(o);
    }
    return placed;
  }

  test('finds the orders a service did not deduct, repairs exactly those, and a second pass is clean', async () => {
    const orders = await place(12);
    const skipped = [orders[2], orders[7], orders[11]].map((o) => o?.orderId);
    for (const o of orders) {
      for (const s of SERVICES) {
        if (s === 'points' && skipped.includes(o.orderId)) continue;
        await db.transaction((tx) => applyDeduction(tx, schema, s, o, 'consumer'));
      }
    }
    // Younger than the grace period: still in flight, not reported.
    assert.equal((await reconcileOrders(db, { schema, graceMs: 3_600_000 })).clean, true);

    const first = await reconcileOrders(db, { schema, repair: true, graceMs: 0 });
    assert.equal(first.clean, false);
    assert.deepEqual(first.services.points.missing, skipped);
    assert.deepEqual(first.services.points.repaired, skipped);
    assert.deepEqual(first.services.inventory.missing, []);
    assert.deepEqual(first.services.budget.missing, []);
    const second = await reconcileOrders(db, { schema, graceMs: 0 });
    assert.equal(second.clean, true, JSON.stringify(second.services));
    const { rows } = await db.query<{ order_id: string }>(
      `select order_id from "${schema}".points_ledger where applied_by = 'reconciliation' order by id`,
    );
    assert.deepEqual(
      rows.map((r) => r.order_id),
      skipped,
    );
  });

  test('a repair racing the service for the same order applies it once', async () => {
    const [order] = (await place(1)) as [OrderPlaced];
    for (const s of ['inventory', 'budget'] as const) await db.transaction((tx) => applyDeduction(tx, schema, s, order, 'consumer'));
    // The service's transaction applies the deduction and holds the order's lock, uncommitted, until the
    // repair has seen the order missing and is trying for the lock.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let applied: () => void = () => {};
    const appliedYet = new Promise<void>((resolve) => {
      applied = resolve;
    });
    const service = db.transaction(async (tx) => {
      assert.equal(await applyDeduction(tx, schema, 'points', order, 'consumer'), true);
      applied();
      await held;
    });
    await appliedYet;
    // From here the service's session last ran the entry insert: the only session that can be idle in a
    // transaction after a lock try is the repair's.
    const repair = reconcileOrders(db, { schema, repair: true, graceMs: 0 });
    await waitFor(
      async () => {
        const { rows } = await fresh.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where state = 'idle in transaction' and query like '%pg_try_advisory_xact_lock%'`,
        );
        return (rows[0]?.n ?? 0) > 0;
      },
      { what: 'the repair trying for the order lock', timeoutMs: 10_000, intervalMs: 5 },
    );
    release();
    await service;
    const found = await repair;
    assert.deepEqual(found.services.points.missing, [order.orderId], 'the repair saw the order missing');
    assert.deepEqual(found.services.points.repaired, [], 'and, after the lock, found it applied');
    const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from "${schema}".points_ledger where order_id = $1`, [
      order.orderId,
    ]);
    assert.equal(rows[0]?.n, 1);
  });
});
