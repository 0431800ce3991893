import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Admin } from '@platformatic/kafka';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { KafkaTransactionalProcessor } from '../../../src/adapters/kafka/kafka-transactional-processor.ts';
import { PostgresDeadLetterStore } from '../../../src/adapters/postgres/postgres-dead-letter-store.ts';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import { Consumer } from '../../../src/consumer/consumer.ts';
import { PermanentError, RetryableError } from '../../../src/core/errors.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  readTopic,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** P10: consume-transform-produce in Kafka transactions, and consumer positions stored with the effects. */
describe('exactly-once variants (P10)', () => {
  let publisher: KafkaPublisher;
  before(() => {
    publisher = new KafkaPublisher({ brokers: BROKERS });
  });
  after(async () => {
    await publisher.close();
  });

  test('Kafka transactions: outputs and input offsets commit together; aborted attempts are invisible to read_committed', async () => {
    const input = uniqueId('zl-eos-in');
    const output = uniqueId('zl-eos-out');
    // One partition each, so the output of the last input is the last committed output record.
    await createTopics([...topicFamily(input), output], 1);
    const N = 200;
    const records = Array.from({ length: N }, (_, i) => zlRecord({ topic: input, key: `k${i % 7}`, type: 'order', payload: { n: i + 1 } }));
    records.push(zlRecord({ topic: input, key: 'end', type: 'order', payload: { n: 0, sentinel: 1 } }));
    for (const o of await publisher.publish(records)) assert.ok(o.ok);

    let failedOnce = false;
    const transform = async ({ record, payload }: { record: { key: string }; payload: unknown }) => {
      const { n } = payload as { n: number };
      if (n === 157 && !failedOnce) {
        failedOnce = true;
        throw new RetryableError('pricing service timeout');
      }
      if (n === 99) throw new PermanentError('order cannot be priced');
      return [{ topic: output, key: record.key, value: Buffer.from(JSON.stringify({ n, doubled: n * 2 })), headers: {} }];
    };
    const config = {
      brokers: BROKERS,
      groupId: uniqueId('g'),
      topics: [input],
      transactionalId: uniqueId('tx'),
      maxBatch: 60,
      flushEvery: 10,
    };
    const processor = new KafkaTransactionalProcessor({ config, transform });
    let aborted = 0;
    processor.on('aborted', () => aborted++);
    await processor.start();
    const isEnd = (r: { value: Buffer }) => JSON.parse(r.value.toString()).n === 0;
    let committed: Awaited<ReturnType<typeof readTopic>>;
    try {
      committed = await readTopic(output, N + 10, 60_000, { until: isEnd });
    } finally {
      await processor.stop();
    }
    const ns = committed.map((r) => JSON.parse(r.value.toString()).n as number);
    assert.equal(ns[ns.length - 1], 0, 'read up to the sentinel');
    const expected = Array.from({ length: N }, (_, i) => i + 1).filter((n) => n !== 99);
    assert.deepEqual(
      ns.slice(0, -1).sort((a, b) => a - b),
      expected,
      'read_committed: each output exactly once; none for the dead-lettered input',
    );
    assert.equal(aborted, 1, 'one transaction was aborted and its inputs read again');
    const uncommitted = await readTopic(output, N + 100, 60_000, { isolation: 'read_uncommitted', until: isEnd });
    assert.ok(uncommitted.length > committed.length, 'the aborted attempt did write records, which read_committed never showed');
    const dlq = await readTopic(`${input}.dlq`, 1);
    assert.equal(JSON.parse(dlq[0]?.value.toString() ?? '{}').n, 99);
    assert.equal(dlq[0]?.headers['zl-dlq-error-code'], 'ZL_PERMANENT');

    // Offsets were committed inside the transactions: a new instance resumes after them, reprocessing nothing.
    const more = Array.from({ length: 20 }, (_, i) => zlRecord({ topic: input, key: 'k', type: 'order', payload: { n: 1000 + i } }));
    more.push(zlRecord({ topic: input, key: 'end', type: 'order', payload: { n: -1 } }));
    for (const o of await publisher.publish(more)) assert.ok(o.ok);
    const again = new KafkaTransactionalProcessor({ config, transform });
    await again.start();
    try {
      const all = await readTopic(output, 10_000, 60_000, { until: (r) => JSON.parse(r.value.toString()).n === -1 });
      const allNs = all.map((r) => JSON.parse(r.value.toString()).n as number);
      assert.equal(allNs.length, new Set(allNs).size, 'no output twice across the restart');
      assert.equal(allNs.length, N - 1 + 1 + 20 + 1);
    } finally {
      await again.stop();
    }
  });

  test('positions in the business database: a restart resumes from the offsets committed with the effects', async () => {
    const env = await freshSchema('zlc');
    const topic = uniqueId('zl-dboff');
    const groupId = uniqueId('g');
    try {
      await createEffectTable(env.db, env.schema);
      await createTopics(topicFamily(topic), 2);
      const make = () => {
        // A plain subscriber: the consumer hands it the stored positions (startOffsets) itself.
        const consumer = new Consumer({
          subscriber: new KafkaSubscriber({ brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
          db: env.db,
          inbox: new PostgresInboxStore(env.db, { schema: env.schema }),
          deadLetters: new PostgresDeadLetterStore(env.db, { schema: env.schema }),
          publisher,
          config: { groupId, topics: [topic], commitIntervalMs: 50, offsetStore: 'database' },
        });
        consumer.handle<{ n: number }>('credit', async (m, ctx) =>
          insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
        );
        return consumer;
      };
      const first = make();
      await first.start();
      const batch1 = Array.from({ length: 100 }, (_, i) => zlRecord({ topic, key: `k${i % 5}`, type: 'credit', payload: { n: i + 1 } }));
      for (const o of await publisher.publish(batch1)) assert.ok(o.ok);
      await waitFor(async () => (await first.metrics()).zeroloss_consumer_processed_total === 100, { what: '100 processed' });
      await first.stop();
      const { rows } = await env.pool.query(
        `select sum(next_offset)::int as total from "${env.schema}".consumer_offset where consumer_group = $1`,
        [groupId],
      );
      assert.equal(rows[0].total, 100, 'stored next offsets cover the 100 records');

      // Forget the broker's copy of the positions: only the database knows where to resume.
      const admin = new Admin({ clientId: 'zl-test', bootstrapBrokers: BROKERS });
      await waitFor(() => admin.deleteGroups({ groups: [groupId] }).then(() => true), { what: 'group deleted', timeoutMs: 30_000 });
      await admin.close();

      const second = make();
      await second.start();
      try {
        const batch2 = Array.from({ length: 50 }, (_, i) => zlRecord({ topic, key: `k${i % 5}`, type: 'credit', payload: { n: 101 + i } }));
        for (const o of await publisher.publish(batch2)) assert.ok(o.ok);
        await waitFor(async () => (await second.metrics()).zeroloss_consumer_processed_total === 50, { what: '50 processed' });
        const metrics = await second.metrics();
        assert.equal(metrics.zeroloss_consumer_duplicates_total ?? 0, 0, 'nothing before the stored offsets was read again');
      } finally {
        await second.stop();
      }
      const effects = await env.pool.query(`select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect`);
      assert.deepEqual(effects.rows[0], { n: 150, d: 150 });
    } finally {
      await env.cleanup();
    }
  });
});
