import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { KafkaInspector } from '../../src/adapters/kafka/kafka-inspector.ts';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { rabbitmq } from '../../src/adapters/rabbitmq/rabbitmq-transport.ts';
import { tableLog } from '../../src/adapters/table-log/table-log-transport.ts';
import { createRelay } from '../../src/outbox/create-relay.ts';
import { Relay } from '../../src/outbox/relay.ts';
import type { BrokerInspector } from '../../src/ports/broker-inspector.ts';
import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../helpers/kafka.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { type CrashScenarioSummary, type CrashTally, countingPublisher, crashScenario } from '../helpers/relay-crash-after-ack.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** The inspector with every call counted, and every call failing when `fail` is set. */
function watchedInspector(inner: BrokerInspector, fail: boolean): BrokerInspector & { calls: number } {
  const watched = {
    calls: 0,
    listTopics: () => call(() => inner.listTopics()),
    watermarks: (topic: string) => call(() => inner.watermarks(topic)),
    offsetsForTime: (topic: string, atMs: number) => call(() => inner.offsetsForTime(topic, atMs)),
    committedOffsets: (groupId: string) => call(() => inner.committedOffsets(groupId)),
    read: (...args: Parameters<BrokerInspector['read']>) => {
      watched.calls++;
      if (fail) throw new Error('broker read failed (injected)');
      return inner.read(...args);
    },
  };
  async function call<T>(fn: () => Promise<T>): Promise<T> {
    watched.calls++;
    if (fail) throw new Error('broker read failed (injected)');
    return fn();
  }
  return watched;
}

/**
 * A relay that dies between the broker's ack and recording it leaves its rows leased; once the lease ends
 * the next relay claims them. With the broker's inspector it finds them on the broker and marks them sent
 * with the broker's position instead of resending them: no second copy of an acknowledged message, none
 * lost, each key in order. Crash points are injected in-process (test/helpers/relay-crash-after-ack.ts);
 * `node faults/relay-broker-check.ts` runs 1,000 of them on each transport.
 */
describe('relay broker check: no resend of a message the broker already holds', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlbchk');
  });
  after(async () => {
    await env.cleanup();
  });

  /** `confirmsCarryOffsets: false` (RabbitMQ): a row sent normally has no broker position, only one the check found has. */
  function check(summary: CrashScenarioSummary, crashes: number, options = { confirmsCarryOffsets: true }) {
    process.stdout.write(`# ${JSON.stringify(summary)}\n`);
    assert.equal(summary.crashes, crashes, 'every crash point reached');
    assert.equal(summary.resendsOfAcked, 0, `resends of messages the broker had acknowledged: ${JSON.stringify(summary)}`);
    assert.equal(summary.lost, 0, 'none lost');
    assert.equal(summary.duplicated, 0, 'one copy of each on the topic');
    assert.equal(summary.outOfOrder, 0, 'each key in order');
    assert.equal(summary.sentRows, summary.total, 'every row recorded sent');
    if (options.confirmsCarryOffsets) assert.equal(summary.noPosition, 0, 'every row has the broker position recorded');
    else assert.equal(summary.noPosition, summary.total - summary.foundOnBroker, 'the rows found on the broker have its position');
  }

  test('table log: 300 crash points after the ack, 0 resends', async () => {
    const transport = tableLog({ db: env.db, schema: env.schema });
    const topic = 'zl-bchk-log';
    await transport.ensureTopic(topic, 3);
    const summary = await crashScenario({
      ...env,
      topic,
      publisher: transport.publisher,
      inspector: transport.inspector,
      crashes: 300,
      batchSize: 2,
    });
    check(summary, 300);
  });

  test('Kafka: 50 crash points after the ack, 0 resends', async () => {
    const topic = uniqueTopic('zl-bchk');
    await createTopic(topic, 3);
    const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS, deliveryTimeoutMs: 10_000 });
    const inspector = new KafkaInspector({ brokers: KAFKA_BROKERS });
    try {
      check(await crashScenario({ ...env, topic, publisher, inspector, crashes: 50, batchSize: 5 }), 50);
    } finally {
      await publisher.close();
      await inspector.close();
    }
  });

  test('RabbitMQ: 10 crash points after the ack, 0 resends', async () => {
    const topic = `zl-bchk-${randomBytes(4).toString('hex')}`;
    const transport = rabbitmq(RABBITMQ_URL, { publisher: { deliveryTimeoutMs: 10_000 } });
    try {
      await transport.ensureTopic(topic, 3);
      const summary = await crashScenario({
        ...env,
        topic,
        publisher: transport.publisher,
        inspector: transport.inspector,
        crashes: 10,
        batchSize: 3,
      });
      check(summary, 10, { confirmsCarryOffsets: false });
    } finally {
      await transport.topicAdmin.deleteTopic(topic).catch(() => {});
      await transport.close();
    }
  });

  test('a first claim never reads the broker', async () => {
    const transport = tableLog({ db: env.db, schema: env.schema });
    const topic = 'zl-bchk-first';
    await transport.ensureTopic(topic, 3);
    const outbox = testOutbox({ schema: env.schema });
    await inTransaction(env.pool, async (tx) => {
      for (let i = 0; i < 100; i++) await outbox.enqueue(tx, { topic, key: `k${i % 5}`, type: 't', payload: { i } });
    });
    const inspector = watchedInspector(transport.inspector, false);
    const relay = new Relay({
      sources: new PostgresOutboxStore(env.db, { schema: env.schema }),
      publisher: transport.publisher,
      inspector,
      config: { batchSize: 10 },
    });
    assert.equal(await relay.drain(), 100);
    assert.equal(inspector.calls, 0, 'no broker read on the normal path');
  });

  test('a check that cannot read the broker resends: duplicates, none lost, order kept', async () => {
    const transport = tableLog({ db: env.db, schema: env.schema });
    const topic = 'zl-bchk-fail';
    await transport.ensureTopic(topic, 3);
    const failing = watchedInspector(transport.inspector, true);
    const summary = await crashScenario({
      ...env,
      topic,
      publisher: transport.publisher,
      inspector: transport.inspector,
      relayInspector: failing,
      crashes: 20,
      batchSize: 2,
    });
    process.stdout.write(`# ${JSON.stringify(summary)}\n`);
    assert.ok(failing.calls > 0, 'the check was tried');
    assert.equal(summary.crashes, 20);
    assert.ok(summary.resendsOfAcked > 0, 'the rows were sent again');
    assert.equal(summary.foundOnBroker, 0);
    assert.equal(summary.lost, 0, 'none lost');
    assert.equal(summary.outOfOrder, 0, 'each key in order');
    assert.equal(summary.sentRows, summary.total, 'every row recorded sent');
  });

  test('createRelay takes the inspector from the transport bundle; a transport without one resends', async () => {
    const transport = tableLog({ db: env.db, schema: env.schema });
    const outbox = testOutbox({ schema: env.schema });
    const source = new PostgresOutboxStore(env.db, { schema: env.schema });
    const resends: Record<string, number> = {};
    for (const [topic, withInspector] of [
      ['zl-bchk-bundle', true],
      ['zl-bchk-no-inspector', false],
    ] as const) {
      await transport.ensureTopic(topic, 3);
      await inTransaction(env.pool, async (tx) => {
        for (let i = 0; i < 3; i++) await outbox.enqueue(tx, { topic, key: `k${i}`, type: 't', payload: { i } });
      });
      const tally: CrashTally = { acked: new Set(), resendsOfAcked: 0, crashes: 0 };
      let acked!: () => void;
      const crashed = new Promise<void>((resolve) => {
        acked = resolve;
      });
      // Abandoned at the crash point: this drain never settles.
      void new Relay({ sources: source, publisher: countingPublisher(transport.publisher, tally, acked), config: { leaseMs: 1 } }).drain();
      await crashed;
      const publisher = countingPublisher(transport.publisher, tally);
      const relay = createRelay({
        store: { db: env.db, relaySource: source },
        // A bundle's parts are getters, built on first use; a bundle may have no inspector at all.
        transport: withInspector
          ? {
              publisher,
              get inspector() {
                return transport.inspector;
              },
            }
          : { publisher },
      });
      assert.equal(await relay.drain(), 3);
      resends[topic] = tally.resendsOfAcked;
    }
    assert.deepEqual(resends, { 'zl-bchk-bundle': 0, 'zl-bchk-no-inspector': 3 });
  });
});
