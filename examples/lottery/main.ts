/**
 * The lottery example (E1) wired by hand, without the demo's faults: one embedded PGlite, the table-log
 * transport, a relay and a consumer in this process. Three users draw three times each; the awards go
 * out from their own rows (mq_state) and the delivery service hands them out by prize type.
 *
 *   npx node examples/lottery/main.ts          (from a clone; `npx zeroloss demo lottery` for the faulty run)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import {
  Consumer,
  migrate,
  PostgresDeadLetterStore,
  PostgresInboxStore,
  pgliteDatabase,
  Relay,
  TableLogAdmin,
  TableLogPublisher,
  TableLogSubscriber,
} from '../../src/index.ts';
import { registerDeliveryService } from '../../src/examples/lottery/delivery-service.ts';
import { awardSource, DrawService } from '../../src/examples/lottery/draw-service.ts';
import { auditLottery } from '../../src/examples/lottery/lottery-audit.ts';
import { createLotteryTables } from '../../src/examples/lottery/lottery-tables.ts';

const dir = await mkdtemp(join(tmpdir(), 'zeroloss-lottery-'));
const pglite = new PGlite(dir);
const db = pgliteDatabase(pglite);
const schema = 'lottery';
const topic = 'lottery.award';
const groupId = 'lottery-delivery';

await migrate(db, schema); // zeroloss's tables (state-column bookkeeping, inbox, dead letters, table log)
await createLotteryTables(db, schema); // user_strategy_export with mq_state, award_delivery
await new TableLogAdmin(db, { schema }).createTopic(topic, 4);

// Producer side: the relay sends award rows whose mq_state is not 1, in order per user.
const relay = new Relay({ sources: awardSource(db, { schema, topic }), publisher: new TableLogPublisher(db, { schema }), db });
// Consumer side: one handler per prize type, each with its retry policy, idempotent by order id.
const consumer = new Consumer({
  subscriber: new TableLogSubscriber(db, { schema }),
  db,
  inbox: new PostgresInboxStore(db, { schema }),
  deadLetters: new PostgresDeadLetterStore(db, { schema }),
  config: { groupId, topics: [topic] },
});
registerDeliveryService(consumer, { schema });
await relay.start();
await consumer.start();

const draws = new DrawService(db, { schema, source: awardSource(db, { schema, topic }) });
for (let round = 0; round < 3; round++) {
  for (const user of ['user-1', 'user-2', 'user-3']) {
    const award = await draws.draw(user);
    console.log(`${user} drew ${award.award_type} "${award.award_name}" (order ${award.order_id})`);
  }
}

let audit = await auditLottery(db, { schema, zerolossSchema: schema, groupId });
for (let waited = 0; audit.delivered + audit.deadLettered < audit.committed && waited < 30_000; waited += 200) {
  await sleep(200);
  audit = await auditLottery(db, { schema, zerolossSchema: schema, groupId });
}
const { rows } = await db.query<{ u_id: string; award_type: string; mq_state: number; detail: unknown }>(
  `select a.u_id, a.award_type, a.mq_state, d.detail from lottery.user_strategy_export a
   left join lottery.award_delivery d using (order_id) order by a.id`,
);
console.table(rows);
console.log(
  `committed ${audit.committed}, published ${audit.published}, delivered ${audit.delivered}, ` +
    `lost ${audit.lost}, applied twice ${audit.appliedTwice}, order violations ${audit.orderViolations}`,
);

await consumer.stop();
await relay.stop();
await pglite.close();
await rm(dir, { recursive: true, force: true });
