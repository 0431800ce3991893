/**
 * The loyalty-points example (E2) wired by hand, without the demo's faults: an order and its "deduct
 * points" message commit together through the outbox; the points service applies each deduction once
 * and dead-letters an overdraft. One embedded PGlite, the table-log transport, all in this process.
 *
 *   npx node examples/points/main.ts           (from a clone; `npx zeroloss demo points` for the faulty run)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import {
  Consumer,
  createOutbox,
  migrate,
  PostgresDeadLetterStore,
  PostgresInboxStore,
  PostgresOutboxStore,
  pgliteDatabase,
  Relay,
  TableLogAdmin,
  TableLogPublisher,
  TableLogSubscriber,
} from '../../src/index.ts';
import { OrderService } from '../../src/examples/points/order-service.ts';
import { auditPoints } from '../../src/examples/points/points-audit.ts';
import { registerPointsService } from '../../src/examples/points/points-service.ts';
import { createPointsTables, openAccounts } from '../../src/examples/points/points-tables.ts';

const dir = await mkdtemp(join(tmpdir(), 'zeroloss-points-'));
const pglite = new PGlite(dir);
const db = pgliteDatabase(pglite);
const schema = 'points';
const topic = 'points.deduct';
const groupId = 'points-service';

await migrate(db, schema);
await createPointsTables(db, schema);
await openAccounts(db, schema, ['alice', 'bob'], 300);
await new TableLogAdmin(db, { schema }).createTopic(topic, 4);

const relay = new Relay({ sources: new PostgresOutboxStore(db, { schema }), publisher: new TableLogPublisher(db, { schema }), db });
const consumer = new Consumer({
  subscriber: new TableLogSubscriber(db, { schema }),
  db,
  inbox: new PostgresInboxStore(db, { schema }),
  deadLetters: new PostgresDeadLetterStore(db, { schema }),
  config: { groupId, topics: [topic] },
});
registerPointsService(consumer, { schema });
consumer.on('dead-letter', (e) => console.log(`dead letter: ${e.reason}`));
await relay.start();
await consumer.start();

const orders = new OrderService(db, { schema, outbox: createOutbox({ store: { outbox: new PostgresOutboxStore(db, { schema }) }, producerId: 'order-service' }), topic });
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

let audit = await auditPoints(db, { schema, zerolossSchema: schema, groupId, topic });
for (let waited = 0; audit.delivered + audit.deadLettered < audit.committed && waited < 30_000; waited += 200) {
  await sleep(200);
  audit = await auditPoints(db, { schema, zerolossSchema: schema, groupId, topic });
}
console.table((await db.query('select id, opening_balance, balance from points.points_account order by id')).rows);
const b = audit.balances;
console.log(
  `orders ${audit.committed}: applied ${audit.delivered}, dead-lettered ${audit.deadLettered}, lost ${audit.lost}, applied twice ${audit.appliedTwice}; ` +
    `opening ${b.openingTotal} − applied ${b.appliedPoints} = balances ${b.balanceTotal} (${b.reconciled ? 'reconciled' : 'NOT reconciled'})`,
);

await consumer.stop();
await relay.stop();
await pglite.close();
await rm(dir, { recursive: true, force: true });
