import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { RetryEvent } from '../../../src/consumer/consumer-events.ts';
import { NotYetError, StaleVersionError } from '../../../src/consumer/guards/guard-errors.ts';
import { versionGuard } from '../../../src/consumer/guards/version-guard.ts';
import type { HandlerContext } from '../../../src/consumer/handler-registry.ts';
import { uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { tableLogConsumer } from '../../helpers/table-log-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

type OrderPayload = { orderId: string; n?: number };

/**
 * The guards inside a running consumer over the embedded Postgres log: a version-column refusal routed by
 * the handler or dead-lettered, and the hold for a message whose predecessor has not landed yet. One slot
 * (`concurrency: 1`), so a held message that kept its slot would stop every other key.
 */
describe('out-of-order guards in the consumer', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let consumer: Consumer;
  let publisher: TableLogPublisher;
  const topic = 'orders';
  const refusals = new Map<string, number>();
  const payAttempts: number[] = [];
  const retries: RetryEvent[] = [];

  const s = () => `"${env.schema}"`;
  const log = async (ctx: HandlerContext, kind: string, key: string, n = 0): Promise<void> => {
    await ctx.tx.query(`insert into ${s()}.applied (kind, order_id, n) values ($1, $2, $3)`, [kind, key, n]);
  };
  const applied = async (where = 'true') =>
    (await env.pool.query(`select kind, order_id, n from ${s()}.applied where ${where} order by id`)).rows as Array<{
      kind: string;
      order_id: string;
      n: number;
    }>;
  const publish = async (...records: Array<{ key: string; type: string; payload: OrderPayload }>) => {
    for (const outcome of await publisher.publish(records.map((r) => zlRecord({ topic, ...r })))) assert.ok(outcome.ok);
  };

  before(async () => {
    env = await freshSchema('zlgh');
    await env.pool.query(`create table ${s()}.orders (id text primary key, version int not null, status text not null)`);
    await env.pool.query(
      `create table ${s()}.applied (id bigserial primary key, kind text not null, order_id text not null, n int not null)`,
    );
    await env.pool.query(`create table ${s()}.stale_log (message_id text primary key, order_id text not null, actual int)`);
    const admin = new TableLogAdmin(env.db, { schema: env.schema });
    for (const t of [topic, `${topic}.dlq`]) await admin.createTopic(t, 4);
    publisher = new TableLogPublisher(env.db, { schema: env.schema });
    const orders = versionGuard({ schema: env.schema, table: 'orders', key: 'id' });

    consumer = tableLogConsumer(env, { groupId: uniqueId('g'), topics: [topic], concurrency: 1, retry: { maxRetries: 3, delayMs: 50 } });
    consumer.on('retry', (e) => retries.push(e));
    consumer.handle<OrderPayload>('created', async (m, ctx) => {
      await ctx.tx.query(`insert into ${s()}.orders (id, version, status) values ($1, 1, 'created')`, [m.payload.orderId]);
      await log(ctx, 'created', m.payload.orderId);
    });
    // "paid" builds on version 1: early (no row yet) → held; stale (the row moved on) → routed to stale_log.
    const pay = async (m: { id: string; payload: OrderPayload }, ctx: HandlerContext) => {
      const orderId = m.payload.orderId;
      try {
        await orders.update(ctx.tx, { key: orderId, expected: 1, set: { status: 'paid' } });
      } catch (error) {
        if (!(error instanceof StaleVersionError)) throw error;
        if (error.rowBehind) {
          refusals.set(orderId, (refusals.get(orderId) ?? 0) + 1);
          throw new NotYetError(`order ${orderId} not created yet`, { details: { orderId } });
        }
        await ctx.tx.query(`insert into ${s()}.stale_log values ($1, $2, $3)`, [m.id, orderId, error.actual]);
        return;
      }
      payAttempts.push(ctx.attempt);
      await log(ctx, 'paid', orderId);
    };
    consumer.handle<OrderPayload>('paid', pay, { hold: { maxMs: 20_000, delayMs: 20, maxDelayMs: 200 } });
    consumer.handle<OrderPayload>('paid-briefly', pay, { hold: { maxMs: 600, delayMs: 20, maxDelayMs: 100 } });
    // No catch: a stale write goes to dead letters with its code.
    consumer.handle<OrderPayload>('paid-strict', async (m, ctx) => {
      await orders.update(ctx.tx, { key: m.payload.orderId, expected: 1, set: { status: 'paid' } });
    });
    consumer.handle<OrderPayload>('note', async (m, ctx) => log(ctx, 'note', m.payload.orderId, m.payload.n));
    await consumer.start();
  });
  after(async () => {
    await consumer?.stop();
    await env.cleanup();
  });

  test('a stale write is refused with the typed error: routed by the handler that catches it, dead-lettered by one that does not', async () => {
    await publish({ key: 'o2', type: 'created', payload: { orderId: 'o2' } }, { key: 'o2', type: 'paid', payload: { orderId: 'o2' } });
    await waitFor(async () => (await applied(`order_id = 'o2' and kind = 'paid'`)).length === 1, { what: 'o2 paid' });
    await publish(
      { key: 'o2', type: 'paid', payload: { orderId: 'o2' } },
      { key: 'o2', type: 'paid-strict', payload: { orderId: 'o2' } },
      { key: 'o2', type: 'note', payload: { orderId: 'o2', n: 1 } },
    );
    await waitFor(async () => (await applied(`order_id = 'o2' and kind = 'note'`)).length === 1, { what: 'the note behind them' });
    const stale = await env.pool.query(`select actual from ${s()}.stale_log where order_id = 'o2'`);
    assert.deepEqual(stale.rows, [{ actual: 2 }], 'the second "paid" was routed, with the version it found');
    const dead = await env.pool.query(`select msg_type, error_code, error, attempts from ${s()}.dead_letter where msg_key = 'o2'`);
    assert.equal(dead.rows.length, 1);
    assert.equal(dead.rows[0].msg_type, 'paid-strict');
    assert.equal(dead.rows[0].error_code, 'ZL_STALE_VERSION');
    assert.match(dead.rows[0].error, /expected version 1, found version 2/);
    assert.equal(dead.rows[0].attempts, 1, 'not retryable: one attempt');
    assert.equal(retries.length, 0);
    const row = await env.pool.query(`select version, status from ${s()}.orders where id = 'o2'`);
    assert.deepEqual(row.rows, [{ version: 2, status: 'paid' }]);
  });

  test('an early message is held in its lane and re-checked, uncharged: its key waits, other keys flow, and it applies once its predecessor lands', async () => {
    retries.length = 0;
    payAttempts.length = 0;
    // "paid" for o1 before o1 exists; its key's next message queues behind it.
    await publish({ key: 'o1', type: 'paid', payload: { orderId: 'o1' } }, { key: 'o1', type: 'note', payload: { orderId: 'o1', n: 1 } });
    await waitFor(() => (refusals.get('o1') ?? 0) >= 3, { what: 'o1 refused a few times' });
    // Other keys flow meanwhile, through the one slot.
    await publish(...Array.from({ length: 10 }, (_, n) => ({ key: `k${n}`, type: 'note', payload: { orderId: `k${n}`, n } })));
    await waitFor(async () => (await applied(`order_id like 'k%'`)).length === 10, { what: 'ten other keys applied while o1 is held' });
    assert.deepEqual(await applied(`order_id = 'o1'`), [], 'neither o1 message applied: its note waits behind the held one');
    const checksBefore = refusals.get('o1') ?? 0;
    await waitFor(() => (refusals.get('o1') ?? 0) > checksBefore, { what: 'o1 still being re-checked' });

    // The predecessor arrives under another key (another producer's stream, say).
    await publish({ key: 'create-o1', type: 'created', payload: { orderId: 'o1' } });
    await waitFor(async () => (await applied(`order_id = 'o1'`)).length === 3, { what: 'o1 created, paid, noted' });
    assert.deepEqual(
      (await applied(`order_id = 'o1'`)).map((r) => r.kind),
      ['created', 'paid', 'note'],
      'paid applied once, after its predecessor, and before the key message behind it',
    );
    assert.deepEqual(payAttempts, [1], 'the hold charged no retry: it applied on attempt 1');
    assert.equal(retries.length, 0, 'no retry event');
    const row = await env.pool.query(`select version, status from ${s()}.orders where id = 'o1'`);
    assert.deepEqual(row.rows, [{ version: 2, status: 'paid' }]);
    const dead = await env.pool.query(`select count(*)::int as n from ${s()}.dead_letter where msg_key = 'o1'`);
    assert.equal(dead.rows[0].n, 0);
  });

  test('a message held past its bound is dead-lettered with the reason, and its key flows on', async () => {
    retries.length = 0;
    await publish(
      { key: 'o3', type: 'paid-briefly', payload: { orderId: 'o3' } },
      { key: 'o3', type: 'note', payload: { orderId: 'o3', n: 1 } },
    );
    await waitFor(async () => (await applied(`order_id = 'o3'`)).length === 1, { what: 'the note behind the expired hold' });
    const dead = await env.pool.query(`select msg_type, error_code, error, attempts, details from ${s()}.dead_letter where msg_key = 'o3'`);
    assert.equal(dead.rows.length, 1);
    assert.equal(dead.rows[0].msg_type, 'paid-briefly');
    assert.equal(dead.rows[0].error_code, 'ZL_HOLD_EXPIRED');
    assert.match(dead.rows[0].error, /held 0\.\d s \(\d+ checks\) for a predecessor that did not land: order o3 not created yet/);
    assert.equal(dead.rows[0].attempts, 1, 'the checks were not charged as attempts');
    assert.ok((refusals.get('o3') ?? 0) >= 3, `re-checked with backoff (${refusals.get('o3')} checks)`);
    assert.equal(retries.length, 0, 'no retry event');
  });
});
