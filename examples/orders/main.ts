/**
 * The order fan-out example (E3) wired by hand, without the demo's faults: an order and one
 * `order.placed` message commit together through the outbox; inventory, budget and points each consume it
 * in their own consumer group and deduct once. The points service here has a bug that acknowledges one
 * order without deducting, which no message-level check can see; the business reconciliation finds that
 * order, repairs it, and finds nothing on a second pass. One embedded PGlite, the table-log transport,
 * all in this process.
 *
 *   npx node examples/orders/main.ts           (from a clone; `npx zeroloss demo orders` for the faulty run)
 *
 * The imports are the package's own entry points, as a user writes them: '../../src/index.ts' is 'zeroloss',
 * '../../src/entry/pglite.ts' is 'zeroloss/pglite', '../../src/entry/table-log.ts' is 'zeroloss/table-log'.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Consumer, createConsumer, createOutbox, createRelay, deadLetterTopic } from '../../src/index.ts';
import { pglite } from '../../src/entry/pglite.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { auditOrders, ordersProgress } from '../../src/examples/orders/order-audit.ts';
import { reconcileOrders } from '../../src/examples/orders/order-reconciliation.ts';
import { OrderService } from '../../src/examples/orders/order-service.ts';
import { SERVICES } from '../../src/examples/orders/order-sql.ts';
import { createOrderTables, openHolders } from '../../src/examples/orders/order-tables.ts';
import { registerOrderService, SERVICE_GROUPS } from '../../src/examples/orders/fulfilment-services.ts';

const schema = 'orders';
const topic = 'order.placed';
const dir = await mkdtemp(join(tmpdir(), 'zeroloss-orders-'));
const store = pglite(dir, { schema });
const transport = tableLog(store);

await store.migrate();
await createOrderTables(store.db, schema);
await openHolders(store.db, schema, 'inventory', ['sku-1', 'sku-2'], 100);
await openHolders(store.db, schema, 'budget', ['alice', 'bob'], 10_000);
await openHolders(store.db, schema, 'points', ['alice', 'bob'], 1_000);
for (const t of [topic, deadLetterTopic(topic)]) await transport.ensureTopic(t, 4);

const relay = createRelay({ store, transport });
// One consumer per service, each in its own group: each reads every order and keeps its own offsets and inbox rows.
const consumers: Consumer[] = [];
let bugged: string | undefined;
for (const service of SERVICES) {
  const consumer = createConsumer({ store, transport, groupId: SERVICE_GROUPS[service], topics: [topic] });
  registerOrderService(consumer, service, {
    schema,
    // The bug: points acknowledges the second order it sees without deducting anything.
    wrap:
      service === 'points'
        ? (handler) => async (message, ctx) => {
            if (bugged === undefined && message.payload.customerId === 'bob') {
              bugged = message.payload.orderId;
              return;
            }
            await handler(message, ctx);
          }
        : undefined,
  });
  consumers.push(consumer);
}
await relay.start();
for (const c of consumers) await c.start();

const orders = new OrderService(store.db, { schema, outbox: createOutbox({ store, producerId: 'order-service' }), topic });
for (const [customer, sku, quantity, amount, points] of [
  ['alice', 'sku-1', 2, 300, 30],
  ['bob', 'sku-2', 1, 120, 20],
  ['alice', 'sku-2', 1, 80, 10],
] as const) {
  const order = await orders.placeOrder(customer, { sku, quantity, amount, points });
  console.log(`order ${order.orderId}: ${customer} buys ${quantity} × ${sku} for ${amount}, ${points} points`);
}

// Wait until every group has consumed every order (the inbox rows), then compare the business rows.
const options = { schema, zerolossSchema: schema, topic, groups: SERVICE_GROUPS };
for (let waited = 0; waited < 30_000; waited += 200) {
  if ((await ordersProgress(store.db, options)).consumed === 3) break;
  await sleep(200);
}
const first = await reconcileOrders(store.db, { schema, repair: true, graceMs: 0 });
for (const s of SERVICES) {
  console.log(
    `${s}: placed but not deducted ${JSON.stringify(first.services[s].missing)}, repaired ${JSON.stringify(first.services[s].repaired)}`,
  );
}
console.log(`the points bug skipped order ${bugged}`);
const second = await reconcileOrders(store.db, { schema, graceMs: 0 });
const audit = await auditOrders(store.db, options);
console.log(
  `second pass ${second.clean ? 'clean' : 'NOT clean'}; ` +
    SERVICES.map(
      (s) => `${s}: applied ${audit.services[s].applied}, lost ${audit.services[s].lost}, applied twice ${audit.services[s].appliedTwice}`,
    ).join('; '),
);

for (const c of consumers) await c.stop();
await relay.stop();
await transport.close();
await store.close();
await rm(dir, { recursive: true, force: true });
