/**
 * The lottery example (E1) wired by hand, without the demo's faults: one embedded PGlite, the table-log
 * transport, a relay and a consumer in this process. Three users draw three times each; the awards go
 * out from their own rows (mq_state) and the delivery service hands them out by prize type.
 *
 *   npx node examples/lottery/main.ts          (from a clone; `npx zeroloss demo lottery` for the faulty run)
 *
 * The imports are the package's own entry points, as a user writes them: '../../src/index.ts' is 'zeroloss',
 * '../../src/entry/pglite.ts' is 'zeroloss/pglite', '../../src/entry/table-log.ts' is 'zeroloss/table-log'.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createConsumer, createRelay, deadLetterTopic } from '../../src/index.ts';
import { pglite } from '../../src/entry/pglite.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { registerDeliveryService } from '../../src/examples/lottery/delivery-service.ts';
import { awardSource, DrawService } from '../../src/examples/lottery/draw-service.ts';
import { auditLottery } from '../../src/examples/lottery/lottery-audit.ts';
import { createLotteryTables } from '../../src/examples/lottery/lottery-tables.ts';

// The business tables and zeroloss's tables share one schema here; zeroloss learns it once, from the store.
const schema = 'lottery';
const topic = 'lottery.award';
const groupId = 'lottery-delivery';
const dir = await mkdtemp(join(tmpdir(), 'zeroloss-lottery-'));
const store = pglite(dir, { schema });
const transport = tableLog(store);

await store.migrate(); // zeroloss's tables (state-column bookkeeping, inbox, dead letters, table log)
await createLotteryTables(store.db, schema); // user_strategy_export with mq_state, award_delivery
for (const t of [topic, deadLetterTopic(topic)]) await transport.ensureTopic(t, 4);

// Producer side: the relay sends award rows whose mq_state is not 1, in order per user.
const awards = awardSource(store, { schema, topic });
const relay = createRelay({ store, transport, sources: [awards] });
// Consumer side: one handler per prize type, each with its retry policy, idempotent by order id.
const consumer = createConsumer({ store, transport, groupId, topics: [topic] });
registerDeliveryService(consumer, { schema });
await relay.start();
await consumer.start();

const draws = new DrawService(store.db, { schema, source: awards });
for (let round = 0; round < 3; round++) {
  for (const user of ['user-1', 'user-2', 'user-3']) {
    const award = await draws.draw(user);
    console.log(`${user} drew ${award.award_type} "${award.award_name}" (order ${award.order_id})`);
  }
}

let audit = await auditLottery(store.db, { schema, zerolossSchema: schema, groupId });
for (let waited = 0; audit.delivered + audit.deadLettered < audit.committed && waited < 30_000; waited += 200) {
  await sleep(200);
  audit = await auditLottery(store.db, { schema, zerolossSchema: schema, groupId });
}
const { rows } = await store.db.query<{ u_id: string; award_type: string; mq_state: number; detail: unknown }>(
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
await transport.close();
await store.close();
await rm(dir, { recursive: true, force: true });
