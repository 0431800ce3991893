import { sentCondition } from '../adapters/postgres/stream-sent-sql.ts';
import { quoteIdent } from '../core/identifier.ts';
import type { Handler } from '../consumer/handler-registry.ts';
import { DEFAULT_RETRY_POLICY } from '../consumer/retry-policy.ts';
import { auditOrders, ordersProgress } from '../examples/orders/order-audit.ts';
import { reconcileOrders } from '../examples/orders/order-reconciliation.ts';
import { type OrderPlaced, OrderService } from '../examples/orders/order-service.ts';
import { type OrderServiceName, SERVICES } from '../examples/orders/order-sql.ts';
import { createOrderTables, openHolders } from '../examples/orders/order-tables.ts';
import { registerOrderService, SERVICE_GROUPS } from '../examples/orders/fulfilment-services.ts';
import { createOutbox } from '../outbox/outbox.ts';
import type { Database } from '../ports/sql-executor.ts';
import { type FaultRates, faultyHandler, plannedFault } from './fault-plan.ts';
import type { BusinessReconciliation, Scenario, ScenarioContext } from './scenarios.ts';

/** Transient failures only: every deduction succeeds within the policy, so no dead letter is expected. */
export const ORDER_FAULTS: FaultRates = { permanent: 0, beyondPolicy: 0, transient: 0.04 };
const SKUS = Array.from({ length: 20 }, (_, i) => `sku-${String(i + 1).padStart(2, '0')}`);
const LINE = { maxQuantity: 3, maxAmount: 500, maxPoints: 100 };
const GROUPS = SERVICES.map((s) => SERVICE_GROUPS[s]);
const serviceOfGroup = new Map(SERVICES.map((s) => [SERVICE_GROUPS[s], s]));

const auditOptions = (ctx: ScenarioContext) => ({
  schema: ctx.schema,
  zerolossSchema: ctx.schema,
  topic: ctx.topic,
  groups: SERVICE_GROUPS,
});

/**
 * The demo's deliberate defect (`--skip-points N`): the points service acknowledges N `order.placed`
 * messages without deducting anything, as a handler bug would. The messages are consumed and their inbox
 * rows written, so message-level reconciliation sees nothing wrong; the business reconciliation must find
 * exactly these orders. The plan row is taken under its row lock in the handler's transaction, so exactly
 * N skips commit however many handlers run at once, and a rolled-back attempt gives its skip back.
 */
function skipSql(schema: string) {
  const s = quoteIdent(schema, 'schema');
  return {
    create: [
      `create table if not exists ${s}.demo_skip_plan (service text primary key, remaining integer not null check (remaining >= 0))`,
      `create table if not exists ${s}.demo_skipped (service text not null, order_id text not null, primary key (service, order_id))`,
    ],
    plan: `insert into ${s}.demo_skip_plan (service, remaining) values ($1, $2) on conflict (service) do update set remaining = excluded.remaining`,
    take: `update ${s}.demo_skip_plan set remaining = remaining - 1 where service = $1 and remaining > 0 returning remaining`,
    record: `insert into ${s}.demo_skipped (service, order_id) values ($1, $2)`,
    skipped: `select service, order_id from ${s}.demo_skipped order by service, order_id`,
  };
}

function skipping(schema: string, service: OrderServiceName, handler: Handler<OrderPlaced>): Handler<OrderPlaced> {
  const sql = skipSql(schema);
  return async (message, ctx) => {
    const { rows } = await ctx.tx.query(sql.take, [service]);
    if (rows.length === 0) return handler(message, ctx);
    await ctx.tx.query(sql.record, [service, message.payload.orderId]);
  };
}

export const orders: Scenario = {
  name: 'orders',
  title: 'order fan-out to inventory, budget and points (E3)',
  unit: 'orders',
  groupId: SERVICE_GROUPS.inventory,
  groups: GROUPS,
  partitions: 8,
  async prepare(db, ctx, users, units) {
    await createOrderTables(db, ctx.schema);
    // Enough for every order: running out is not this example's subject (E2 shows overdrafts).
    await openHolders(db, ctx.schema, 'inventory', SKUS, units * LINE.maxQuantity);
    await openHolders(db, ctx.schema, 'budget', users, units * LINE.maxAmount);
    await openHolders(db, ctx.schema, 'points', users, units * LINE.maxPoints);
    const sql = skipSql(ctx.schema);
    for (const statement of sql.create) await db.query(statement);
    await db.query(sql.plan, ['points', ctx.skipPoints ?? 0]);
  },
  producer(store, ctx, random) {
    const outbox = createOutbox({ store, producerId: 'order-service' });
    const service = new OrderService(store.db, { schema: ctx.schema, outbox, topic: ctx.topic });
    const pick = (max: number, step: number) => step * (1 + Math.floor(random() * (max / step)));
    return async (customer) => {
      await service.placeOrder(customer, {
        sku: SKUS[Math.floor(random() * SKUS.length)] as string,
        quantity: pick(LINE.maxQuantity, 1),
        amount: pick(LINE.maxAmount, 10),
        points: pick(LINE.maxPoints, 10),
      });
    };
  },
  relaySource: (store) => store.relaySource,
  register(consumer, ctx, groupId) {
    const service = serviceOfGroup.get(groupId);
    if (!service) throw new Error(`orders: no service reads as group ${groupId}`);
    registerOrderService(consumer, service, {
      schema: ctx.schema,
      wrap: (handler) => {
        const planned = faultyHandler(handler, (o) =>
          plannedFault(ctx.seed, `${service}:${o.orderId}`, DEFAULT_RETRY_POLICY.maxRetries, ORDER_FAULTS),
        );
        return service === 'points' && (ctx.skipPoints ?? 0) > 0 ? skipping(ctx.schema, service, planned) : planned;
      },
    });
  },
  async progress(db, ctx) {
    const p = await ordersProgress(db, auditOptions(ctx));
    return { committed: p.committed, published: p.published, delivered: p.consumed, deadLettered: p.deadLettered };
  },
  async audit(db, ctx) {
    const a = await auditOrders(db, auditOptions(ctx));
    const per = SERVICES.map((s) => a.services[s]);
    const sum = (f: (x: (typeof per)[number]) => number) => per.reduce((n, x) => n + f(x), 0);
    const services = Object.fromEntries(
      SERVICES.map((s) => {
        const { deadLetteredOrders: _dead, examples: _examples, ...figures } = a.services[s];
        return [s, figures];
      }),
    );
    return {
      committed: a.committed,
      published: a.published,
      parked: a.parked,
      // An order is delivered when every service has deducted for it.
      delivered: Math.min(...per.map((x) => x.applied)),
      deliveredByType: Object.fromEntries(SERVICES.map((s) => [s, a.services[s].applied])),
      deadLettered: sum((x) => x.deadLettered),
      lost: sum((x) => x.lost),
      appliedTwice: sum((x) => x.appliedTwice),
      orderViolations: sum((x) => x.orderViolations),
      deliveredAndDeadLettered: sum((x) => x.deliveredAndDeadLettered),
      // The fault plan fails transiently only: any dead letter is unexpected.
      expectedDeadLettered: 0,
      unexpectedDeadLetters: sum((x) => x.deadLettered),
      missingDeadLetters: 0,
      examples: {
        lost: per.flatMap((x) => x.examples.lost).slice(0, 5),
        appliedTwice: per.flatMap((x) => x.examples.appliedTwice).slice(0, 5),
        outOfOrder: per.flatMap((x) => x.examples.outOfOrder).slice(0, 5),
      },
      services,
    };
  },
  async sentRecords(db, ctx, limit) {
    const s = quoteIdent(ctx.schema, 'schema');
    const { rows } = await db.query<{ topic: string; msg_key: string; headers: Record<string, string>; payload: Uint8Array }>(
      `select o.topic, o.msg_key, o.headers, o.payload from ${s}.outbox o where o.topic = $1 and ${sentCondition(s)} order by random() limit $2`,
      [ctx.topic, limit],
    );
    return rows.map((r) => ({ topic: r.topic, key: r.msg_key, headers: r.headers, value: Buffer.from(r.payload) }));
  },
  reconcile: (db, ctx) => reconcileTwice(db, ctx),
};

/**
 * After the run: the business reconciliation finds and repairs, then runs again and must find nothing. With
 * `--skip-points`, what it found must be exactly the deductions the demo skipped.
 */
async function reconcileTwice(db: Database, ctx: ScenarioContext): Promise<BusinessReconciliation> {
  const first = await reconcileOrders(db, { schema: ctx.schema, repair: true, graceMs: 0 });
  const second = await reconcileOrders(db, { schema: ctx.schema, repair: false, graceMs: 0 });
  const { rows } = await db.query<{ service: OrderServiceName; order_id: string }>(skipSql(ctx.schema).skipped);
  const per = <T>(f: (s: OrderServiceName) => T) => Object.fromEntries(SERVICES.map((s) => [s, f(s)])) as Record<OrderServiceName, T>;
  const skipped = per((s) =>
    rows
      .filter((r) => r.service === s)
      .map((r) => r.order_id)
      .sort(),
  );
  const found = per((s) => [...first.services[s].missing].sort());
  const repaired = per((s) => [...first.services[s].repaired].sort());
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const foundExactlySkipped = SERVICES.every((s) => same(found[s], skipped[s]));
  const allRepaired = SERVICES.every((s) => same(repaired[s], found[s]));
  return {
    orders: first.orders,
    found,
    repaired,
    skipped,
    appliedTwice: per((s) => first.services[s].appliedTwice),
    orphans: per((s) => first.services[s].orphans),
    failed: SERVICES.flatMap((s) => first.services[s].failed.map((f) => ({ service: s, ...f }))),
    firstPassClean: first.clean,
    secondPassClean: second.clean,
    foundExactlySkipped,
    ok: foundExactlySkipped && allRepaired && second.clean && !first.truncated,
  };
}
