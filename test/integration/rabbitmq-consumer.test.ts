import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import type { Consumer } from '../../src/consumer/consumer.ts';
import type { Subscription } from '../../src/ports/transport.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../helpers/consumer-fixtures.ts';
import { freshSchema } from '../helpers/pg.ts';
import { testConsumer } from '../helpers/test-consumer.ts';
import { consumerOverTransport } from '../helpers/consumer-over-transport.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// The consumer runtime unchanged over RabbitMQ streams; the streams and the groups' offset queues are
// deleted afterwards.
consumerOverTransport('RabbitMQ streams', async ({ groupId }) => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}-orders`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  const topics = [topic, `${topic}.dlq`, `${topic}.retry.1`];
  for (const t of topics) await admin.createTopic(t, 4);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const witnessGroup = uniqueId('witness');
  let witness: Subscription | undefined;
  return {
    topic,
    publisher,
    subscriber: () =>
      new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000, offsetRetentionMs: 600_000 }),
    async retried() {
      // A stream does not count its messages on a passive declare: read the retry topic with a group of its own.
      const keys: string[] = [];
      witness = await new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 }).subscribe({
        groupId: witnessGroup,
        topics: [`${topic}.retry.1`],
        onRecords: (batch) => keys.push(...batch.records.map((r) => r.key)),
      });
      await waitFor(() => keys.length > 0, { what: 'the flaky message on the retry topic' });
      assert.deepEqual(keys, ['f'], 'only the flaky message went through the retry topic');
      return keys.length;
    },
    async cleanup() {
      await witness?.close();
      await admin.deleteGroupOffsets(witnessGroup, `${topic}.retry.1`, 4);
      await publisher.close();
      for (const t of topics) {
        await admin.deleteTopic(t);
        await admin.deleteGroupOffsets(groupId, t, 4);
      }
      await admin.close();
    },
  };
});

/**
 * N3 over RabbitMQ streams: each kind of bad input (a payload that is not UTF-8, a message without
 * zeroloss's headers, an oversized payload, a type nobody handles) is dead-lettered with its reason, and
 * the good message published right after it on the same key is still applied: the loop keeps going. The
 * message without headers comes from a plain AMQP client (a foreign publisher).
 */
describe('bad input over RabbitMQ goes to dead letters and the loop keeps going', () => {
  const MAX_PAYLOAD = 2_000;
  const KEY = 'user-1';
  const topic = `zl-it-${randomBytes(4).toString('hex')}-bad`;
  const groupId = uniqueId('g');
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let admin: RabbitMqAdmin;
  let publisher: RabbitMqPublisher;
  let consumer: Consumer | undefined;

  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
    // One partition, so the foreign messages and the publisher's land in one stream, in the order sent.
    for (const t of [topic, `${topic}.dlq`]) await admin.createTopic(t, 1);
    publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  });

  after(async () => {
    await consumer?.stop();
    await publisher?.close();
    for (const t of [topic, `${topic}.dlq`]) {
      await admin?.deleteTopic(t);
      await admin?.deleteGroupOffsets(groupId, t, 1);
    }
    await admin?.close();
    await env?.cleanup();
  });

  test('invalid UTF-8, missing headers, oversized, unknown type: dead letters with their reasons, good ones applied', async () => {
    const good = (n: number) => zlRecord({ topic, key: KEY, type: 'credit', payload: { n } });
    const conn = await amqp.connect(RABBITMQ_URL);
    const foreign = async (headers: Record<string, unknown> | undefined) => {
      const ch = await conn.createConfirmChannel();
      ch.publish('', `${topic}:0`, Buffer.from('{"n":0}'), { persistent: true, ...(headers ? { headers } : {}) });
      await ch.waitForConfirms();
      await ch.close();
    };
    const cases: Array<{ name: string; write: () => Promise<unknown>; code: string; reason: RegExp }> = [
      {
        name: 'invalid UTF-8',
        write: () => publisher.publish([{ ...good(0), value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }]),
        code: 'ZL_INVALID_PAYLOAD',
        reason: /payload is not valid UTF-8/,
      },
      {
        name: 'no headers at all (a foreign publisher)',
        write: () => foreign(undefined),
        code: 'ZL_INVALID_MESSAGE',
        reason: /envelope header zl-[\w-]+ is missing/,
      },
      {
        name: 'foreign headers only, non-string values',
        write: () => foreign({ 'x-zl-key': KEY, 'zl-id': 42, other: true }),
        code: 'ZL_INVALID_MESSAGE',
        reason: /envelope header zl-[\w-]+ is missing/,
      },
      {
        name: 'zl-id header removed',
        write: () => {
          const r = good(0);
          const { 'zl-id': _, ...headers } = r.headers;
          return publisher.publish([{ ...r, headers }]);
        },
        code: 'ZL_INVALID_MESSAGE',
        reason: /envelope header zl-id is missing/,
      },
      {
        name: 'oversized payload',
        write: () => publisher.publish([zlRecord({ topic, key: KEY, type: 'credit', payload: { n: 0, pad: 'x'.repeat(MAX_PAYLOAD) } })]),
        code: 'ZL_PAYLOAD_TOO_LARGE',
        reason: /over the limit of 2000/,
      },
      {
        name: 'unknown type',
        write: () => publisher.publish([zlRecord({ topic, key: KEY, type: 'coupon', payload: { n: 0 } })]),
        code: 'ZL_UNKNOWN_TYPE',
        reason: /no handler registered for type "coupon"/,
      },
    ];
    try {
      let n = 1;
      for (const c of cases) {
        const written = await c.write();
        if (Array.isArray(written)) for (const o of written as Array<{ ok: boolean }>) assert.ok(o.ok, `${c.name} published`);
        const [next] = await publisher.publish([good(n++)]);
        assert.ok(next?.ok);
      }
    } finally {
      await conn.close();
    }
    consumer = testConsumer({
      subscriber: new RabbitMqSubscriber({
        url: RABBITMQ_URL,
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 2_000,
        offsetRetentionMs: 600_000,
      }),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId, topics: [topic], maxPayloadBytes: MAX_PAYLOAD, commitIntervalMs: 50 },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    await consumer.start();
    await waitFor(
      async () => {
        const m = await consumer?.metrics();
        return m?.zeroloss_consumer_processed_total === cases.length && m.zeroloss_consumer_dead_lettered_total === cases.length;
      },
      { what: 'every good message applied and every bad one dead-lettered', timeoutMs: 30_000 },
    );
    const dead = await env.pool.query<{ error_code: string; error: string; at: string }>(
      `select error_code, error, msg_offset::text as at from "${env.schema}".dead_letter order by msg_offset`,
    );
    assert.equal(dead.rows.length, cases.length, `one dead letter per bad message: ${JSON.stringify(dead.rows)}`);
    for (const [i, c] of cases.entries()) {
      const row = dead.rows[i];
      assert.equal(row?.error_code, c.code, c.name);
      assert.match(row?.error ?? '', c.reason, c.name);
      // Bad messages are at even stream offsets, each followed by the good one.
      assert.equal(row?.at, String(2 * i), `${c.name} at its offset`);
    }
    const { rows } = await env.pool.query<{ n: number }>(`select n from "${env.schema}".effect order by id`);
    assert.deepEqual(
      rows.map((r) => r.n),
      cases.map((_, i) => i + 1),
      'the good message after each bad one applied, in order',
    );
  });
});
