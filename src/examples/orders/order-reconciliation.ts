import type { Database } from '../../ports/sql-executor.ts';
import { applyDeduction } from './order-deduction.ts';
import type { OrderPlaced } from './order-service.ts';
import { type OrderServiceName, orderSql, SERVICES } from './order-sql.ts';

/** What the reconciliation found for one service, by order id. */
export interface ServiceFindings {
  /** Orders placed (older than the grace period) with no entry of this service: "order placed but X not deducted". */
  missing: string[];
  /** Orders with more than one entry: reported, never repaired automatically (a refund is a business decision). */
  appliedTwice: string[];
  /** Entries for an order that does not exist. */
  orphans: number;
  /** Of `missing`, the orders whose deduction the repair applied. */
  repaired: string[];
  /** Of `missing`, the orders the repair could not apply, with the reason. */
  failed: Array<{ orderId: string; reason: string }>;
}

export interface OrderReconciliation {
  orders: number;
  services: Record<OrderServiceName, ServiceFindings>;
  /** Nothing missing, nothing applied twice, no orphans (as found, before any repair). */
  clean: boolean;
  /** More was found than `limit`: run again. */
  truncated: boolean;
}

export interface ReconcileOrdersOptions {
  schema: string;
  /** Apply the missing deductions (default false: report only). */
  repair?: boolean;
  /** Orders younger than this are still in flight and not checked (default 60,000 ms). */
  graceMs?: number;
  /** At most this many findings per service and kind (default 10,000). */
  limit?: number;
}

/**
 * The business-level reconciliation, the safety net under the messaging: compares the orders with the
 * stock movements, budget entries and points ledger, by order id, and (with `repair`) applies what is
 * missing through the same deduction the services run, tagged `applied_by = 'reconciliation'`. It is
 * independent of message-id reconciliation on purpose: it reads no outbox or inbox, so it also finds a
 * message that was consumed and acknowledged but whose effect never happened (a handler bug, a skipped
 * branch, a hand-edited row), which no message-level check can see.
 */
export async function reconcileOrders(db: Database, options: ReconcileOrdersOptions): Promise<OrderReconciliation> {
  const sql = orderSql(options.schema);
  const limit = options.limit ?? 10_000;
  const graceMs = options.graceMs ?? 60_000;
  const { rows: count } = await db.query<{ n: number }>(sql.orderCount);
  const services = {} as Record<OrderServiceName, ServiceFindings>;
  let truncated = false;
  for (const service of SERVICES) {
    const q = sql.service[service];
    const [missing, twice, orphans] = await Promise.all([
      db.query<{ order_id: string }>(q.missing, [graceMs, limit]),
      db.query<{ order_id: string }>(q.appliedTwice, [limit]),
      db.query<{ n: number }>(q.orphans),
    ]);
    truncated ||= missing.rows.length === limit || twice.rows.length === limit;
    services[service] = {
      missing: missing.rows.map((r) => r.order_id),
      appliedTwice: twice.rows.map((r) => r.order_id),
      orphans: Number(orphans.rows[0]?.n ?? 0),
      repaired: [],
      failed: [],
    };
  }
  if (options.repair) {
    for (const service of SERVICES) await repair(db, options.schema, service, services[service]);
  }
  const clean = SERVICES.every(
    (s) => services[s].missing.length === 0 && services[s].appliedTwice.length === 0 && services[s].orphans === 0,
  );
  return { orders: Number(count[0]?.n ?? 0), services, clean, truncated };
}

/** One transaction per order: a failing repair leaves the others applied. */
async function repair(db: Database, schema: string, service: OrderServiceName, findings: ServiceFindings): Promise<void> {
  if (findings.missing.length === 0) return;
  const { rows } = await db.query<{ order_id: string; customer_id: string; sku: string; quantity: number; amount: number; points: number }>(
    orderSql(schema).ordersById,
    [findings.missing],
  );
  for (const r of rows) {
    const order: OrderPlaced = {
      orderId: r.order_id,
      customerId: r.customer_id,
      sku: r.sku,
      quantity: Number(r.quantity),
      amount: Number(r.amount),
      points: Number(r.points),
    };
    try {
      // False when the service's own consumer got there since the check: nothing to repair then.
      if (await db.transaction((tx) => applyDeduction(tx, schema, service, order, 'reconciliation'))) findings.repaired.push(order.orderId);
    } catch (error) {
      findings.failed.push({ orderId: order.orderId, reason: (error as Error).message });
    }
  }
}
