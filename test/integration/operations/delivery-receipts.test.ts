import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { postgresStore } from '../../../src/adapters/postgres/postgres-store.ts';
import { PostgresReceiptStore } from '../../../src/adapters/postgres/postgres-receipt-store.ts';
import { ReceiptReporter } from '../../../src/consumer/receipt-reporter.ts';
import type { Receipts } from '../../../src/core/control-message.ts';
import type { ZerolossError } from '../../../src/core/errors.ts';
import { createConsumer } from '../../../src/entry/create-consumer.ts';
import { confirmationStatus, confirmations } from '../../../src/operations/confirmations.ts';
import { cleanup } from '../../../src/operations/retention.ts';
import { storeReceipts } from '../../../src/operations/store-receipts.ts';
import { zeroloss, zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** Two-way confirmation on the producer's database: what is stored, what is read back, what retention takes. */
describe('delivery receipts', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let receipts: PostgresReceiptStore;
  const ids: string[] = [];
  const s = () => `"${env.schema}"`;
  before(async () => {
    env = await freshSchema('zlrcpt');
    receipts = new PostgresReceiptStore(env.db, { schema: env.schema });
    const outbox = testOutbox({ schema: env.schema, producerId: 'orders' });
    for (const [i, topic] of ['orders', 'orders', 'orders', 'audit'].entries()) {
      ids.push((await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `k${i}`, type: 'x', payload: i }))).id);
    }
    // Sent two minutes ago, each at its own offset (the relay's record, written directly).
    await env.pool.query(
      `update ${s()}.outbox set state = 1, sent_at = now() - interval '2 minutes', sent_partition = 0, sent_offset = seq_id + 100,
         created_at = now() - interval '3 minutes' + seq_id * interval '1 second'`,
    );
  });
  after(async () => {
    await env.cleanup();
  });

  test('stores receipts of this outbox once; ids of another producer are dropped', async () => {
    const [m1, m2] = ids as [string, string];
    const handle = storeReceipts(receipts);
    const at = new Date(Date.now() - 60_000).toISOString();
    const message = (group: string, applied: string[]): Receipts => ({
      kind: 'receipts',
      group,
      at,
      applied: applied.map((messageId) => ({ messageId, producerId: 'orders', topic: 'orders' })),
    });
    let stored = 0;
    const counting = storeReceipts(receipts, (n) => {
      stored += n;
    });
    await counting(message('billing', [m1, m1, m2, 'another-producers-id']));
    assert.equal(stored, 2, 'a repeat in one batch and a foreign id are not stored');
    await counting(message('billing', [m1]));
    assert.equal(stored, 2, 'a repeated receipt keeps the first');
    await handle(message('shipping', [m1]));
    const rows = (await env.pool.query(`select message_id, consumer_group, topic, applied_at from ${s()}.delivery_receipt order by 2, 1`))
      .rows;
    assert.equal(rows.length, 3);
    assert.deepEqual(new Set(rows.map((r) => r.topic)), new Set(['orders']), 'the topic is the outbox row’s');
    assert.equal(rows[0].applied_at.toISOString(), at, 'applied_at is the receipt batch time');
  });

  test('per message: sent position, groups applied, expected groups not confirmed', async () => {
    const [m1, m2, m3, m4] = ids as [string, string, string, string];
    const result = await confirmations({ store: receipts }, [m1, m2, m3, m4, 'nope']);
    const by = new Map(result.map((r) => [r.messageId, r]));
    assert.deepEqual(
      by.get(m1)?.applied.map((a) => a.group),
      ['billing', 'shipping'],
    );
    assert.deepEqual(by.get(m1)?.notConfirmed, []);
    assert.equal(by.get(m1)?.sent?.partition, 0);
    assert.match(by.get(m1)?.sent?.offset ?? '', /^\d+$/);
    assert.deepEqual(by.get(m2)?.notConfirmed, ['shipping'], 'shipping confirmed this topic before: it is expected');
    assert.deepEqual(by.get(m3)?.notConfirmed, ['billing', 'shipping']);
    assert.deepEqual(by.get(m4)?.notConfirmed, [], 'no group confirmed the audit topic: nobody is expected');
    assert.deepEqual((await confirmations({ store: receipts }, [m4], { groups: ['archive'] }))[0]?.notConfirmed, ['archive']);
    assert.equal(by.get('nope')?.found, false);
  });

  test('per group over a window: confirmed of sent on the topics it reads, and the oldest unconfirmed', async () => {
    const [, m2, m3] = ids as [string, string, string];
    const groups = await confirmationStatus({ store: receipts }, { windowMs: 3_600_000, unconfirmedAfterMs: 30_000 });
    const by = new Map(groups.map((g) => [g.group, g]));
    assert.deepEqual([...by.keys()], ['billing', 'shipping'], 'groups seen in receipts');
    assert.deepEqual(by.get('billing')?.topics, ['orders']);
    assert.deepEqual([by.get('billing')?.sent, by.get('billing')?.confirmed, by.get('billing')?.unconfirmed], [3, 2, 1]);
    assert.equal(by.get('billing')?.oldestUnconfirmed?.messageId, m3);
    assert.deepEqual([by.get('shipping')?.confirmed, by.get('shipping')?.unconfirmed], [1, 2]);
    assert.equal(by.get('shipping')?.oldestUnconfirmed?.messageId, m2);
    const fresh = await confirmationStatus({ store: receipts }, { windowMs: 3_600_000, unconfirmedAfterMs: 600_000 });
    assert.equal(fresh[0]?.sent, 0, 'messages sent within the grace are not counted yet');
    const named = await confirmationStatus({ store: receipts }, { groups: ['archive'], windowMs: 3_600_000, unconfirmedAfterMs: 0 });
    assert.deepEqual([named[0]?.topics, named[0]?.sent, named[0]?.confirmed], [null, 4, 0], 'a group never seen: every topic counts');
  });

  test('zeroloss status: per expected group confirmed of sent and the oldest unconfirmed; exit 1 only for named groups', async () => {
    const [, m2, m3] = ids as [string, string, string];
    const args = ['status', '--pg', PG_URL, '--schema', env.schema, '--confirm-window', '1h', '--unconfirmed-after', '30s'];
    type Out = { confirmations: Array<{ group: string; confirmed: number; sent: number; oldestUnconfirmed?: { messageId: string } }> };
    // Two CLI processes at once: each spends most of its time starting.
    const [text, named] = await Promise.all([zeroloss(args), zerolossJson<Out>([...args, '--expect-groups', 'billing,archive'])]);
    assert.equal(text.code, 0, `groups merely seen in receipts do not fail status: ${text.stderr}`);
    assert.match(text.stdout, new RegExp(`confirmations billing {2}2 of 3 confirmed \\(orders\\) {2}oldest unconfirmed ${m3} `));
    assert.match(text.stdout, new RegExp(`confirmations shipping {2}1 of 3 confirmed \\(orders\\) {2}oldest unconfirmed ${m2} `));
    assert.equal(named.code, 1, 'an expected group left messages unconfirmed');
    assert.deepEqual(
      named.json.confirmations.map((c) => [c.group, c.confirmed, c.sent]),
      [
        ['archive', 0, 4],
        ['billing', 2, 3],
      ],
    );
  });

  test('the reporter batches by count and by time, and never throws into the effect path', async () => {
    const sent: Receipts[] = [];
    const reporter = new ReceiptReporter({ sender: { send: (m) => sent.push(m) }, groupId: 'billing', maxBatch: 2, intervalMs: 20 });
    const event = (messageId: string) => ({
      groupId: 'billing',
      type: 'x',
      messageId,
      producerId: 'orders',
      key: 'k',
      topic: 'orders',
      partition: 0,
      offset: 0n,
      outcome: 'processed' as const,
    });
    reporter.processed(event('a'));
    reporter.processed(event('b'));
    reporter.processed(event('b2'));
    assert.equal(sent.length, 0, 'nothing is encoded inside the emit');
    await waitFor(() => sent.length === 2, { timeoutMs: 5_000, intervalMs: 1, what: 'the full batch' });
    assert.deepEqual(
      sent.map((m) => m.applied.map((a) => a.messageId)),
      [['a', 'b'], ['b2']],
      'a full batch goes on the next turn, in messages of at most maxBatch ids',
    );
    reporter.processed(event('c'));
    reporter.processed(event('x'.repeat(600)));
    reporter.processed(event(''));
    await waitFor(() => sent.length === 3, { timeoutMs: 5_000, intervalMs: 5, what: 'the timed batch' });
    assert.deepEqual(
      sent[2]?.applied.map((a) => a.messageId),
      ['c'],
      'sent after the interval; ids past the schema limits skipped',
    );
    const failing = new ReceiptReporter({
      sender: {
        send: () => {
          throw new Error('queue gone');
        },
      },
      groupId: 'g',
      maxBatch: 1,
      onError: () => {},
    });
    assert.doesNotThrow(() => failing.processed(event('d')));
    reporter.close();
  });

  test('control.receipts is validated: it needs a publisher, and a batch the control schema can carry', () => {
    const store = postgresStore(env.db, { schema: env.schema });
    const subscriber = { subscribe: async () => assert.fail('not started') };
    const options = { store, groupId: 'g', topics: ['orders'] };
    assert.throws(
      () => createConsumer({ ...options, transport: { subscriber }, control: { receipts: true } }),
      (e: ZerolossError) => e.code === 'ZL_INVALID_CONFIG' && /control\.receipts needs a publisher/.test(e.message),
    );
    assert.throws(
      () => createConsumer({ ...options, transport: { subscriber }, control: { receipts: true, receiptBatch: 10_001 } }),
      /receiptBatch/,
    );
  });

  test('retention deletes receipts with their outbox rows', async () => {
    await env.pool.query(`update ${s()}.outbox set created_at = now() - interval '30 days', sent_at = now() - interval '30 days'`);
    const before = Number((await env.pool.query(`select count(*) from ${s()}.delivery_receipt`)).rows[0].count);
    assert.ok(before > 0);
    const result = await cleanup({ store: new PostgresOperationsStore(env.db, { schema: env.schema }) }, { pauseMs: 0 });
    assert.equal(result.outbox, 4);
    assert.equal(Number((await env.pool.query(`select count(*) from ${s()}.delivery_receipt`)).rows[0].count), 0);
  });
});
