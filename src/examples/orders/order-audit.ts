import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { auditSql, type OrderServiceName, orderSql, SERVICES } from './order-sql.ts';

/** One service's figures, counted from its rows and its group's dead letters. */
export interface ServiceAudit {
  /** Orders with an entry of this service. */
  applied: number;
  /** Of those, entries the business reconciliation applied. */
  repaired: number;
  deadLettered: number;
  deadLetteredOrders: string[];
  /** Orders with neither an entry nor a dead letter of this service's group. */
  lost: number;
  /** Orders with more than one entry. */
  appliedTwice: number;
  deliveredAndDeadLettered: number;
  /** Per customer, entries applied from messages in another order than the orders were placed. */
  orderViolations: number;
  /** Total deducted (stock units, budget, points). */
  deducted: number;
  /** Stock items or accounts whose balance is not their opening amount plus their entries. */
  holdersOff: number;
  examples: { lost: string[]; appliedTwice: string[]; outOfOrder: string[] };
}

export interface OrdersAudit {
  committed: number;
  /** Outbox rows of the order topic in state 1 (the transport acknowledged them). */
  published: number;
  parked: number;
  services: Record<OrderServiceName, ServiceAudit>;
}

export interface OrdersAuditOptions {
  schema: string;
  /** Holds the outbox, inbox and dead_letter tables. */
  zerolossSchema: string;
  topic: string;
  groups: Record<OrderServiceName, string>;
}

/** Audits the order fan-out example, per service. */
export async function auditOrders(db: SqlExecutor, options: OrdersAuditOptions): Promise<OrdersAudit> {
  const progress = await ordersProgress(db, options);
  const services = {} as Record<OrderServiceName, ServiceAudit>;
  for (const service of SERVICES) services[service] = await auditService(db, options, service);
  return { committed: progress.committed, published: progress.published, parked: progress.parked, services };
}

async function auditService(db: SqlExecutor, options: OrdersAuditOptions, service: OrderServiceName): Promise<ServiceAudit> {
  const q = orderSql(options.schema).service[service];
  const all = 1_000_000_000;
  const [figures, dead, missing, twice, order] = await Promise.all([
    db.query<{ applied: number; repaired: number; deducted: string; holders_off: number }>(q.figures),
    db.query<{ idempotency_key: string }>(auditSql(options.schema, options.zerolossSchema).deadLetters, [options.groups[service]]),
    db.query<{ order_id: string }>(q.missing, [0, all]),
    db.query<{ order_id: string }>(q.appliedTwice, [all]),
    db.query<{ order_id: string }>(q.outOfOrder),
  ]);
  const f = figures.rows[0] as { applied: number; repaired: number; deducted: string; holders_off: number };
  const deadOrders = dead.rows.map((r) => r.idempotency_key);
  const deadSet = new Set(deadOrders);
  const missingSet = new Set(missing.rows.map((r) => r.order_id));
  const lost = missing.rows.map((r) => r.order_id).filter((id) => !deadSet.has(id));
  return {
    applied: Number(f.applied),
    repaired: Number(f.repaired),
    deadLettered: deadOrders.length,
    deadLetteredOrders: deadOrders,
    lost: lost.length,
    appliedTwice: twice.rows.length,
    deliveredAndDeadLettered: deadOrders.filter((id) => !missingSet.has(id)).length,
    orderViolations: order.rows.length,
    deducted: Number(f.deducted),
    holdersOff: Number(f.holders_off),
    examples: {
      lost: lost.slice(0, 5),
      appliedTwice: twice.rows.slice(0, 5).map((r) => r.order_id),
      outOfOrder: order.rows.slice(0, 5).map((r) => r.order_id),
    },
  };
}

/**
 * The cheap figures for a progress line and the settle test: `consumed` counts the orders every group has
 * an inbox row for (the message was handled in each), whatever the handler did with it.
 */
export async function ordersProgress(
  db: SqlExecutor,
  options: OrdersAuditOptions,
): Promise<{ committed: number; published: number; parked: number; consumed: number; deadLettered: number }> {
  const { rows } = await db.query<Record<string, number>>(auditSql(options.schema, options.zerolossSchema).progress, [
    Object.values(options.groups),
    options.topic,
  ]);
  const r = rows[0] as Record<string, number>;
  return {
    committed: Number(r.committed),
    published: Number(r.published),
    parked: Number(r.parked),
    consumed: Number(r.consumed),
    deadLettered: Number(r.dead),
  };
}
