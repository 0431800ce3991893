import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PostgresDeadLetterStore } from '../../../src/adapters/postgres/postgres-dead-letter-store.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { createOutbox } from '../../../src/index.ts';
import { reconcile } from '../../../src/operations/reconcile.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { ReconcileDeps } from '../../../src/operations/reconcile.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * Reconcile reads a group's dead letters, then its committed offsets. A message the group dead-lettered and
 * committed past in between was reported missing (a gap, and a repair that resends it, which the group then
 * parks behind its open dead letter, verdict "repaired" with nothing applied). The suspects are looked up
 * again once the commits are known: applied, and now dead-lettered too.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
let store: ReturnType<typeof postgres>;
before(async () => {
  env = await freshSchema('zlrdl');
  store = postgres(PG_URL, { schema: env.schema });
});
after(async () => {
  await store?.close();
  await env?.cleanup();
});

test('a message dead-lettered and committed past while reconcile reads is dead-lettered in the report, not missing', async () => {
  const transport = tableLog(store);
  await transport.ensureTopic('orders', 1);
  const outbox = createOutbox({ store, producerId: 'race' });
  const message = await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'k', type: 't', payload: {} }));
  const relay = createRelay({ store, transport, pollIntervalMs: 50 });
  await relay.start();
  await waitFor(
    async () => (await env.pool.query(`select state from "${env.schema}".outbox where message_id = $1`, [message.id])).rows[0]?.state === 1,
    { what: 'the message sent', timeoutMs: 10_000 },
  );
  await relay.stop();
  const dead = new PostgresDeadLetterStore(env.db, { schema: env.schema });
  let raced = false;
  // The group fails the message for good and commits past it right after reconcile read its dead letters.
  const racing = new Proxy(store.operations, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'deadLettersByMessageIds') return typeof value === 'function' ? value.bind(target) : value;
      return async (ids: string[]) => {
        const seen = await target.deadLettersByMessageIds(ids);
        if (!raced) {
          raced = true;
          await dead.record({
            groupId: 'billing',
            idempotencyKey: message.id,
            messageId: message.id,
            topic: 'orders',
            partition: 0,
            offset: 0n,
            key: 'k',
            type: 't',
            headers: {},
            payload: Buffer.from('{}'),
            errorCode: 'ZL_PERMANENT',
            error: 'declined',
            stack: undefined,
            attempts: 1,
            firstFailureAt: new Date(),
            lastFailureAt: new Date(),
          });
          await env.pool.query(
            `insert into "${env.schema}".consumer_offset (consumer_group, topic, msg_partition, next_offset) values ('billing', 'orders', 0, 1)`,
          );
        }
        return seen;
      };
    },
  }) as ReconcileDeps['store'];
  const window = { from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 60_000) };
  const report = await reconcile({ store: racing, broker: transport.inspector }, window, { groups: ['billing'], dryRun: true });
  assert.ok(raced);
  const group = report.groups.find((g) => g.groupId === 'billing');
  assert.deepEqual({ deadLettered: group?.deadLettered, missing: group?.missing }, { deadLettered: 1, missing: 0 });
  assert.notEqual(report.verdict, 'gaps');
  await transport.close();
});
