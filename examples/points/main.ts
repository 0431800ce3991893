/**
 * The loyalty-points example (E2) wired by hand, without the demo's faults: an order and its "deduct
 * points" message commit together through the outbox; the points service applies each deduction once
 * and dead-letters an overdraft. One embedded PGlite, the table-log transport, all in this process.
 *
 *   npx node examples/points/main.ts           (from a clone; `npx zeroloss demo points` for the faulty run)
 *
 * The imports are the package's own entry points, as a user writes them: '../../src/index.ts' is 'zeroloss',
 * '../../src/entry/pglite.ts' is 'zeroloss/pglite', '../../src/entry/table-log.ts' is 'zeroloss/table-log'.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConsumer, createOutbox, createRelay, deadLetterTopic } from '../../src/index.ts';
import { pglite } from '../../src/entry/pglite.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { OrderService } from '../../src/examples/points/order-service.ts';
import { auditPoints } from '../../src/examples/points/points-audit.ts';
import { registerPointsService } from '../../src/examples/points/points-service.ts';
import { createPointsTables, openAccounts } from '../../src/examples/points/points-tables.ts';

// The business tables and zeroloss's tables share one schema here; zeroloss learns it once, from the store.
const schema = 'points';
const topic = 'points.deduct';
const groupId = 'points-service';
const dir = await mkdtemp(join(tmpdir(), 'zeroloss-points-'));
const store = pglite(dir, { schema });
const transport = tableLog(store);

await store.migrate();
await createPointsTables(store.db, schema);
await openAccounts(store.db, schema, ['alice', 'bob'], 300);
// The consumer copies a dead letter to <topic>.dlq as well as to its dead_letter table.
for (const t of [topic, deadLetterTopic(topic)]) await transport.ensureTopic(t, 4);

const relay = createRelay({ store, transport });
const consumer = createConsumer({ store, transport, groupId, topics: [topic] });
registerPointsService(consumer, { schema });
consumer.on('dead-letter', (e) => console.log(`dead letter: ${e.reason}`));
await relay.start();
await consumer.start();

const orders = new OrderService(store.db, { schema, outbox: createOutbox({ store, producerId: 'order-service' }), topic });
// bob's third order overdraws his account: 120 + 150 + 100 > 300.
for (const [account, points] of [
  ['alice', 100],
  ['bob', 120],
  ['alice', 50],
  ['bob', 150],
  ['bob', 100],
] as const) {
  const order = await orders.placeOrder(account, points);
  console.log(`order ${order.orderId}: deduct ${points} points from ${account}`);
}

let audit = await auditPoints(store.db, { schema, zerolossSchema: schema, groupId, topic });
for (let waited = 0; audit.delivered + audit.deadLettered < audit.committed && waited < 30_000; waited += 200) {
  await sleep(200);
  audit = await auditPoints(store.db, { schema, zerolossSchema: schema, groupId, topic });
}
console.table((await store.db.query('select id, opening_balance, balance from points.points_account order by id')).rows);
const b = audit.balances;
console.log(
  `orders ${audit.committed}: applied ${audit.delivered}, dead-lettered ${audit.deadLettered}, lost ${audit.lost}, applied twice ${audit.appliedTwice}; ` +
    `opening ${b.openingTotal} − applied ${b.appliedPoints} = balances ${b.balanceTotal} (${b.reconciled ? 'reconciled' : 'NOT reconciled'})`,
);

await consumer.stop();
await relay.stop();
await transport.close();
await store.close();
await rm(dir, { recursive: true, force: true });
