import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostgresReceiptStore } from '../../src/adapters/postgres/postgres-receipt-store.ts';
import { CONTROL_HEADER } from '../../src/core/control-message.ts';
import { kafka } from '../../src/entry/kafka.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { PermanentError, createConsumer, createOutbox, createRelay } from '../../src/index.ts';
import { confirmations } from '../../src/operations/confirmations.ts';
import { listenReceipts } from '../../src/operations/store-receipts.ts';
import { trace } from '../../src/operations/trace.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../helpers/kafka.ts';
import { zerolossJson } from '../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * Two-way confirmation end to end on Kafka: the order service's outbox and relay, two consuming services
 * (each its own schema: the producer never reads their databases) that report what they applied on a
 * control topic, and the producer's listener that stores the receipts.
 */
test('two groups, one dead-letters a message: trace and the API show A applied and B not; bad receipts skipped; a listener restart loses no receipt', async () => {
  const producerSchema = uniqueName('zlo9p');
  const consumerSchema = uniqueName('zlo9c');
  const topic = uniqueTopic('o9');
  const control = uniqueTopic('o9-control');
  const [groupA, groupB] = [uniqueName('billing'), uniqueName('shipping')];
  const producer = postgres(PG_URL, { schema: producerSchema });
  const services = postgres(PG_URL, { schema: consumerSchema });
  const transport = kafka({ brokers: KAFKA_BROKERS });
  const receipts = new PostgresReceiptStore(producer.db, { schema: producerSchema });
  const closers: Array<() => Promise<unknown>> = [];
  try {
    await Promise.all([producer.migrate(), services.migrate(), createTopic(topic, 1), createTopic(control, 1)]);
    const outbox = createOutbox({ store: producer, producerId: 'orders' });
    const enqueue = (fail: boolean) =>
      producer.transaction((tx) => outbox.enqueue(tx, { topic, key: 'k', type: 'order.placed', payload: { fail } }));

    // The producer's listener, first with a store that can be switched off (its database down).
    let down = false;
    let failures = 0;
    const invalid: string[] = [];
    const flaky = {
      recordReceipts: async (r: Parameters<PostgresReceiptStore['recordReceipts']>[0]) => {
        if (down) throw new Error('database down');
        return receipts.recordReceipts(r);
      },
    };
    const listenerGroup = uniqueName('orders-control');
    const first = await listenReceipts({
      subscriber: transport.subscriber,
      groupId: listenerGroup,
      topic: control,
      store: flaky,
      retryDelayMs: 50,
      onInvalid: (error) => invalid.push(error.message),
      onError: () => failures++,
    });
    let firstOpen = true;
    closers.push(() => (firstOpen ? first.close() : Promise.resolve()));

    // Two consuming services; shipping refuses messages marked fail (dead letter, no receipt).
    const consumerOf = (groupId: string, refuse: boolean) => {
      const consumer = createConsumer({
        store: services,
        transport,
        groupId,
        topics: [topic],
        deadLetterTopic: false,
        control: { topic: control, receipts: true, receiptIntervalMs: 50, listen: false },
      });
      consumer.handle<{ fail: boolean }>('order.placed', async (message) => {
        if (refuse && message.payload.fail) throw new PermanentError('no shipping address');
      });
      closers.push(() => consumer.stop());
      return consumer;
    };
    const relay = createRelay({ store: producer, transport });
    closers.push(() => relay.stop());
    await relay.start();

    // Anyone can write the control topic: a record that is not JSON and a receipts message of the wrong shape.
    await transport.publisher.publish([
      { topic: control, key: 'x', value: Buffer.from('not json'), headers: { [CONTROL_HEADER]: 'receipts' } },
      { topic: control, key: 'x', value: Buffer.from(JSON.stringify({ kind: 'receipts', group: groupA })), headers: {} },
    ]);

    const ok = (await enqueue(false)).id;
    const refused = (await enqueue(true)).id;
    const a = consumerOf(groupA, false);
    const b = consumerOf(groupB, true);
    await Promise.all([a.start(), b.start()]);

    await waitFor(
      async () => {
        const [m1, m2] = await confirmations({ store: receipts }, [ok, refused]);
        return m1?.applied.length === 2 && m2?.applied.length === 1;
      },
      { timeoutMs: 15_000, what: 'receipts of both groups' },
    );
    assert.equal(invalid.length, 2, 'both bad records skipped and reported');
    const [m1, m2] = await confirmations({ store: receipts }, [ok, refused]);
    assert.deepEqual(m1?.applied.map((x) => x.group).sort(), [groupA, groupB].sort());
    assert.equal(m1?.sent?.partition, 0, 'sent: the broker position');
    assert.deepEqual(
      m2?.applied.map((x) => x.group),
      [groupA],
    );
    assert.deepEqual(m2?.notConfirmed, [groupB], 'B confirmed the topic before, so it is expected and missing');

    const traced = await trace({ store: producer.operations, receipts }, refused);
    assert.deepEqual(traced.confirmations?.notConfirmed, [groupB]);
    assert.equal(traced.groups.length, 0, "the producer's database holds no consumer inbox");
    assert.equal(traced.stop.stage, 'consumer');
    assert.match(traced.stop.reason, new RegExp(`not confirmed by ${groupB}; confirmed by ${groupA}`));
    assert.equal((await trace({ store: producer.operations, receipts }, ok)).stop.stage, 'complete');

    const cli = await zerolossJson<{ confirmations: { applied: Array<{ group: string }>; notConfirmed: string[] } }>([
      'trace',
      refused,
      '--pg',
      PG_URL,
      '--schema',
      producerSchema,
      '--no-broker',
    ]);
    assert.equal(cli.code, 1, 'the trail stops at shipping');
    assert.deepEqual(cli.json.confirmations.notConfirmed, [groupB]);

    // The listener's database goes down: the next receipts fail, and the listener is closed while failing.
    down = true;
    const later = (await enqueue(false)).id;
    await waitFor(() => failures > 0, { timeoutMs: 15_000, what: 'a failed store of the next receipts' });
    await first.close();
    firstOpen = false;
    assert.deepEqual((await confirmations({ store: receipts }, [later]))[0]?.applied, []);
    // A new listener in the same group re-reads what was never stored (its offset was not committed).
    const second = await listenReceipts({ subscriber: transport.subscriber, groupId: listenerGroup, topic: control, store: receipts });
    closers.push(() => second.close());
    await waitFor(async () => (await confirmations({ store: receipts }, [later]))[0]?.applied.length === 2, {
      timeoutMs: 15_000,
      what: 'the receipts the first listener could not store',
    });
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    await transport.close();
    for (const [store, schema] of [
      [producer, producerSchema],
      [services, consumerSchema],
    ] as const) {
      await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await store.close();
    }
  }
});
