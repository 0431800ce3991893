import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import { RedisInboxCache } from '../../../src/adapters/redis/redis-inbox-cache.ts';
import type { MessageIdConflictEvent, ProcessedEvent } from '../../../src/consumer/consumer-events.ts';
import { contentDigest } from '../../../src/consumer/content-digest.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
import type { InboxEntry } from '../../../src/ports/inbox-store.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

const REDIS_URL = process.env.ZL_REDIS_URL ?? 'redis://127.0.0.1:6379';
const subscriberConfig = { brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 };

/** A's bytes under A's id, with the transport headers a retry, replay or tracing proxy may change or add. */
function sameContentOtherHeaders(record: OutgoingRecord): OutgoingRecord {
  return { ...record, headers: { ...record.headers, 'zl-trace-id': 'another-trace', 'x-forwarded-by': 'proxy', 'zl-replay-of': '7' } };
}

function digestOf(record: OutgoingRecord): string {
  const h = record.headers;
  return contentDigest({
    id: h['zl-id'] as string,
    type: h['zl-type'] as string,
    key: record.key,
    version: Number(h['zl-version']),
    payload: record.value,
  });
}

/**
 * Issue 11, finding 2: the inbox compared message ids only, so a second, different message under an id
 * already applied was counted as a duplicate (silent loss). Now the inbox keeps a content digest with each
 * row keyed by a message id: an equal digest is a duplicate, another digest a dead-lettered conflict.
 */
describe('a different message under a known message id is a conflict, never a silent duplicate', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    publisher = new KafkaPublisher({ brokers: BROKERS });
  });
  after(async () => {
    await publisher?.close();
    await env?.cleanup();
  });

  const effects = async (id: string) =>
    (await env.pool.query(`select n from "${env.schema}".effect where message_id = $1 order by id`, [id])).rows.map((r) => r.n as number);
  const publish = async (records: OutgoingRecord[]) => {
    for (const outcome of await publisher.publish(records)) assert.ok(outcome.ok);
  };

  /** A consumer whose 'credit' handler writes the effect; events collected. */
  function creditConsumer(topic: string, options: { cache?: RedisInboxCache; businessKey?: boolean } = {}) {
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      publisher,
      cache: options.cache,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50 },
    });
    const conflicts: MessageIdConflictEvent[] = [];
    const processed: ProcessedEvent[] = [];
    consumer.on('message-id-conflict', (e) => conflicts.push(e));
    consumer.on('processed', (e) => processed.push(e));
    consumer.handle<{ n: number; order?: string }>(
      'credit',
      async (m, ctx) => insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
      options.businessKey ? { idempotencyKey: (m) => m.payload.order as string } : {},
    );
    return { consumer, conflicts, processed };
  }

  for (const withCache of [false, true]) {
    test(`A applied once; B (same id, other payload) dead-lettered with both digests; A again with other headers skipped${withCache ? ' (Redis fast path on)' : ''}`, async () => {
      const topic = uniqueId('zl-conflict');
      await createTopics(topicFamily(topic), 1);
      const cache = withCache ? new RedisInboxCache({ url: REDIS_URL, prefix: uniqueId('zlt'), ttlMs: 60_000 }) : undefined;
      const { consumer, conflicts, processed } = creditConsumer(topic, { cache });
      const id = uniqueId('X');
      const a = zlRecord({ topic, key: 'a', type: 'credit', id, payload: { n: 1 } });
      const b = zlRecord({ topic, key: 'a', type: 'credit', id, payload: { n: 2 } });
      await consumer.start();
      try {
        await publish([a]);
        await waitFor(() => processed.some((e) => e.outcome === 'processed'), { what: 'A applied' });
        if (cache) await waitFor(async () => (await cache.has(consumer.config.groupId, `${id}#${digestOf(a)}`)) === true);
        await publish([b, sameContentOtherHeaders(a)]);
        // B and the copy of A finish in either order: a copy skipped by the cache does not wait for B's dead letter.
        await waitFor(() => processed.some((e) => e.outcome === 'duplicate') && conflicts.length >= 1, {
          what: 'the copy of A and B handled',
          timeoutMs: 20_000,
        });
        assert.deepEqual(await effects(id), [1], 'only A applied');
        const copy = processed.find((e) => e.outcome === 'duplicate');
        assert.deepEqual(
          [copy?.outcome, copy?.via],
          ['duplicate', withCache ? 'cache' : 'inbox'],
          'the same content with other headers is an ordinary duplicate',
        );
        assert.equal(conflicts.length, 1, 'B raised the conflict alarm');
        const event = conflicts[0] as MessageIdConflictEvent;
        assert.deepEqual([event.messageId, event.digest, event.appliedDigest], [id, digestOf(b), digestOf(a)]);
        const { rows } = await env.pool.query(
          `select id::text, error_code, details, payload from "${env.schema}".dead_letter where message_id = $1`,
          [id],
        );
        assert.equal(rows.length, 1, 'B is a dead letter');
        assert.equal(rows[0].error_code, 'ZL_MESSAGE_ID_CONFLICT');
        assert.deepEqual(rows[0].details, { messageId: id, digest: digestOf(b), appliedDigest: digestOf(a) });
        assert.ok(Buffer.from(rows[0].payload).equals(b.value), "B's bytes are kept");
        assert.equal(event.deadLetterId, rows[0].id);
        const metrics = await consumer.metrics();
        assert.equal(metrics.zeroloss_consumer_message_id_conflicts_total, 1);
        assert.equal(metrics.zeroloss_consumer_duplicates_total, 1);
      } finally {
        await consumer.stop();
        await cache?.close();
      }
    });
  }

  test('a handler-chosen business key spans messages: another message under it is a duplicate, not a conflict', async () => {
    const topic = uniqueId('zl-bizkey');
    await createTopics(topicFamily(topic), 1);
    const { consumer, conflicts, processed } = creditConsumer(topic, { businessKey: true });
    const first = zlRecord({ topic, key: 'o', type: 'credit', payload: { n: 1, order: 'order-1' } });
    const second = zlRecord({ topic, key: 'o', type: 'credit', payload: { n: 2, order: 'order-1' } });
    await consumer.start();
    try {
      await publish([first, second]);
      await waitFor(() => processed.length === 2, { what: 'both handled' });
      assert.deepEqual(
        processed.map((e) => e.outcome),
        ['processed', 'duplicate'],
      );
      assert.equal(conflicts.length, 0);
    } finally {
      await consumer.stop();
    }
  });

  test('the inbox store in one shared statement: new, duplicate, conflict, an in-batch copy, and rows without a digest', async () => {
    const inbox = new PostgresInboxStore(env.db, { schema: env.schema });
    const entry = (key: string, digest: string | undefined, offset: number): InboxEntry => ({
      groupId: 'store-g',
      idempotencyKey: key,
      messageId: key,
      topic: 't',
      partition: 0,
      offset: BigInt(offset),
      contentDigest: digest,
    });
    const d1 = 'aa'.repeat(16);
    const d2 = 'bb'.repeat(16);
    await env.db.transaction((tx) => inbox.claimMany(tx, [entry('applied', d1, 1), entry('business', undefined, 2)]));
    // A row written before migration 7: no digest.
    await env.pool.query(
      `insert into "${env.schema}".inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset)
       values ('store-g', 'old', 'old', 't', 0, 3)`,
    );
    const claims = await env.db.transaction((tx) =>
      inbox.claimMany(tx, [
        entry('new', d1, 10),
        entry('applied', d1, 11),
        entry('applied', d2, 12),
        entry('new', d2, 13),
        entry('new', d1, 14),
        entry('old', d2, 15),
        entry('business', d2, 16),
      ]),
    );
    assert.deepEqual(claims, [
      { kind: 'claimed' },
      { kind: 'duplicate' },
      { kind: 'conflict', appliedDigest: d1 },
      { kind: 'conflict', appliedDigest: d1 },
      { kind: 'duplicate' },
      { kind: 'duplicate' },
      { kind: 'duplicate' },
    ]);
    const { rows } = await env.pool.query(
      `select encode(content_digest, 'hex') as digest from "${env.schema}".inbox where consumer_group = 'store-g' and idempotency_key = 'new'`,
    );
    assert.equal(rows[0].digest, d1, 'the digest is stored with the row');
  });
});
