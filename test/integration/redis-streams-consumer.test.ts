import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { RedisStreamsPublisher } from '../../src/adapters/redis-streams/redis-streams-publisher.ts';
import { RedisStreamsSubscriber } from '../../src/adapters/redis-streams/redis-streams-subscriber.ts';
import type { Consumer } from '../../src/consumer/consumer.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../helpers/consumer-fixtures.ts';
import { consumerOverTransport } from '../helpers/consumer-over-transport.ts';
import { freshSchema } from '../helpers/pg.ts';
import { testConsumer } from '../helpers/test-consumer.ts';
import { waitFor } from '../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

// The consumer runtime unchanged over Redis Streams, in a key prefix of its own, deleted afterwards.
consumerOverTransport('Redis Streams', async () => {
  const topic = 'orders';
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
  const topics = [topic, `${topic}.dlq`, `${topic}.retry.1`];
  for (const t of topics) await admin.createTopic(t, 4);
  const publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
  return {
    topic,
    publisher,
    subscriber: () =>
      new RedisStreamsSubscriber({ url: REDIS_URL, prefix, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000, pollIntervalMs: 100 }),
    async retried() {
      const redis = new Redis(REDIS_URL);
      let retried = 0;
      for (let p = 0; p < 4; p++) retried += await redis.xlen(`${prefix}:stream:${topic}.retry.1:${p}`);
      redis.disconnect();
      return retried;
    },
    async cleanup() {
      await publisher.close();
      for (const t of topics) await admin.deleteTopic(t);
      await admin.close();
    },
  };
});

/**
 * N3 over Redis Streams: each kind of bad input (a payload that is not UTF-8, an entry without zeroloss's
 * headers, an oversized payload, a type nobody handles) is dead-lettered with its reason, and the good
 * message written right after it on the same key is still applied: the loop keeps going. Entries a
 * foreign writer added (no `h` field, or one that is not JSON) are written with XADD directly.
 */
describe('bad input over Redis Streams goes to dead letters and the loop keeps going', () => {
  const MAX_PAYLOAD = 2_000;
  const KEY = 'user-1';
  const prefix = `zl-it-${randomBytes(4).toString('hex')}`;
  const topic = 'bad-input';
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let admin: RedisStreamsAdmin;
  let publisher: RedisStreamsPublisher;
  let consumer: Consumer | undefined;

  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
    // One partition, so the raw entries and the publisher's land in one stream, in the order written.
    for (const t of [topic, `${topic}.dlq`]) await admin.createTopic(t, 1);
    publisher = new RedisStreamsPublisher({ url: REDIS_URL, prefix });
  });

  after(async () => {
    await consumer?.stop();
    await publisher?.close();
    for (const t of [topic, `${topic}.dlq`]) await admin?.deleteTopic(t);
    await admin?.close();
    await env?.cleanup();
  });

  test('invalid UTF-8, missing headers, oversized, unknown type: dead letters with their reasons, good ones applied', async () => {
    const good = (n: number) => zlRecord({ topic, key: KEY, type: 'credit', payload: { n } });
    const raw = new Redis(REDIS_URL);
    const stream = `${prefix}:stream:${topic}:0`;
    const cases: Array<{ name: string; write: () => Promise<unknown>; code: string; reason: RegExp }> = [
      {
        name: 'invalid UTF-8',
        write: () => publisher.publish([{ ...good(0), value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }]),
        code: 'ZL_INVALID_PAYLOAD',
        reason: /payload is not valid UTF-8/,
      },
      {
        name: 'no headers field (a foreign writer)',
        write: () => raw.xadd(stream, '0-*', 'k', KEY, 'v', '{"n":0}'),
        code: 'ZL_INVALID_MESSAGE',
        reason: /envelope header zl-[\w-]+ is missing/,
      },
      {
        name: 'headers field that is not JSON',
        write: () => raw.xadd(stream, '0-*', 'k', KEY, 'h', '{zl-id', 'v', '{"n":0}'),
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
        const [after] = await publisher.publish([good(n++)]);
        assert.ok(after?.ok);
      }
    } finally {
      raw.disconnect();
    }
    consumer = testConsumer({
      subscriber: new RedisStreamsSubscriber({
        url: REDIS_URL,
        prefix,
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 2_000,
        pollIntervalMs: 100,
      }),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], maxPayloadBytes: MAX_PAYLOAD, commitIntervalMs: 50 },
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
    assert.equal(dead.rows.length, cases.length, `one dead letter per bad entry: ${JSON.stringify(dead.rows)}`);
    for (const [i, c] of cases.entries()) {
      const row = dead.rows[i];
      assert.equal(row?.error_code, c.code, c.name);
      assert.match(row?.error ?? '', c.reason, c.name);
      // Bad entries are at even offsets, each followed by the good one.
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
