import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Producer } from '@platformatic/kafka';
import { z } from 'zod';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
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

/**
 * N3: each kind of bad input is dead-lettered with a reason that names the problem, and the good message
 * published right after it, on the same key (so the same partition and lane), is still applied.
 */
interface BadCase {
  name: string;
  record: (topic: string) => OutgoingRecord | { topic: string; key: string; value: null; headers: Record<string, string> };
  code: string;
  reason: RegExp;
}

const KEY = 'user-1';
const MAX_PAYLOAD = 2_000;

const good = (topic: string, n: number) => zlRecord({ topic, key: KEY, type: 'credit', payload: { n, amount: 10 }, version: 2 });
const withHeaders = (r: OutgoingRecord, change: (h: Record<string, string>) => void): OutgoingRecord => {
  const headers = { ...r.headers };
  change(headers);
  return { ...r, headers };
};

const CASES: BadCase[] = [
  {
    name: 'invalid JSON',
    record: (t) => ({ ...good(t, 0), value: Buffer.from('{"n": 1, "amount": ') }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /payload is not valid JSON/,
  },
  {
    name: 'invalid UTF-8',
    record: (t) => ({ ...good(t, 0), value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /payload is not valid UTF-8/,
  },
  {
    name: 'missing envelope field (message id)',
    record: (t) => withHeaders(good(t, 0), (h) => delete h['zl-id']),
    code: 'ZL_INVALID_MESSAGE',
    reason: /envelope header zl-id is missing/,
  },
  {
    name: 'missing envelope field (type)',
    record: (t) => withHeaders(good(t, 0), (h) => delete h['zl-type']),
    code: 'ZL_INVALID_MESSAGE',
    reason: /envelope header zl-type is missing/,
  },
  {
    name: 'wrong envelope field type (version is not a number)',
    record: (t) => withHeaders(good(t, 0), (h) => (h['zl-version'] = 'two')),
    code: 'ZL_INVALID_MESSAGE',
    reason: /zl-version must be an integer/,
  },
  {
    name: 'wrong payload field type',
    record: (t) => zlRecord({ topic: t, key: KEY, type: 'credit', payload: { n: 0, amount: 'ten' }, version: 2 }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /does not match the schema of credit v2: amount: /,
  },
  {
    name: 'oversized value',
    record: (t) => zlRecord({ topic: t, key: KEY, type: 'credit', payload: { n: 0, amount: 1, pad: 'x'.repeat(MAX_PAYLOAD) }, version: 2 }),
    code: 'ZL_PAYLOAD_TOO_LARGE',
    reason: /over the limit of 2000/,
  },
  {
    name: 'null record value',
    record: (t) => ({ ...good(t, 0), value: null }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /record value is null or empty/,
  },
  {
    name: 'JSON null payload',
    record: (t) => ({ ...good(t, 0), value: Buffer.from('null') }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /does not match the schema of credit v2/,
  },
  {
    name: 'unknown type',
    record: (t) => zlRecord({ topic: t, key: KEY, type: 'coupon', payload: { n: 0 } }),
    code: 'ZL_UNKNOWN_TYPE',
    reason: /no handler registered for type "coupon" \(known: credit\)/,
  },
  // Text Postgres cannot hold: a NUL is refused in text and in jsonb. Each of these once made its dead letter's
  // insert fail for good, retried without end, so its key and the partition's commit point never moved on.
  {
    name: 'a NUL in the payload (the parse error quotes it)',
    record: (t) => ({ ...good(t, 0), value: Buffer.from('{"n":\u0000}') }),
    code: 'ZL_INVALID_PAYLOAD',
    reason: /payload is not valid JSON/,
  },
  {
    name: 'a NUL in an application header of a message that fails',
    record: (t) => withHeaders(zlRecord({ topic: t, key: KEY, type: 'coupon', payload: { n: 0 } }), (h) => (h.note = 'a\u0000b')),
    code: 'ZL_UNKNOWN_TYPE',
    reason: /no handler registered for type "coupon"/,
  },
  {
    name: 'a NUL in the message id',
    record: (t) => withHeaders(good(t, 0), (h) => (h['zl-id'] = 'id-\u0000-1')),
    code: 'ZL_INVALID_MESSAGE',
    reason: /envelope header zl-id contains a NUL character/,
  },
  {
    name: 'a message id of 5,000 characters',
    record: (t) => withHeaders(good(t, 0), (h) => (h['zl-id'] = 'x'.repeat(5_000))),
    code: 'ZL_INVALID_MESSAGE',
    reason: /envelope header zl-id is longer than 512 characters/,
  },
  {
    // Another key, so another lane: the good message after it (on KEY) does not wait for it either way.
    name: 'a NUL in the record key',
    record: (t) => ({ ...good(t, 0), key: 'user-\u00001' }),
    code: 'ZL_INVALID_KEY',
    reason: /record key contains a NUL character/,
  },
  {
    name: 'newer version than the consumer knows',
    record: (t) => zlRecord({ topic: t, key: KEY, type: 'credit', payload: { n: 0, amount: 1 }, version: 3 }),
    code: 'ZL_UNSUPPORTED_VERSION',
    reason: /credit version 3 is newer than this consumer's version 2/,
  },
];

describe('bad input goes to dead letters with its reason and the loop keeps going (N3)', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  let consumer: Consumer;
  const topic = uniqueId('zl-bad');
  /** Offset of each bad record and of the good one after it. */
  const placed = new Map<string, { bad: bigint; next: bigint; nextN: number }>();

  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    await createTopics(topicFamily(topic), 1);
    publisher = new KafkaPublisher({ brokers: BROKERS });
    // A raw producer too: the zeroloss publisher never sends a null value.
    const raw = new Producer({ clientId: 'zl-test-raw', bootstrapBrokers: BROKERS });
    try {
      let n = 1;
      // Version 1 of 'credit' still flows (upcast to v2) alongside the bad ones.
      await publisher.publish([zlRecord({ topic, key: KEY, type: 'credit', payload: { n: n++, cents: 1000 }, version: 1 })]);
      for (const c of CASES) {
        const bad = c.record(topic);
        const result = await raw.send({
          messages: [
            {
              topic,
              key: Buffer.from(bad.key),
              value: bad.value ?? undefined,
              headers: new Map(Object.entries(bad.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
            },
          ],
        });
        const badOffset = result.offsets?.[0]?.offset as bigint;
        const [after] = await publisher.publish([good(topic, n)]);
        assert.ok(after?.ok);
        placed.set(c.name, { bad: badOffset, next: after.offset as bigint, nextN: n });
        n++;
      }
    } finally {
      await raw.close();
    }
    consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], maxPayloadBytes: MAX_PAYLOAD, commitIntervalMs: 50 },
    });
    consumer.handle('credit', async (m, ctx) => insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }), {
      version: 2,
      upcasters: { 1: (p: { n: number; cents: number }) => ({ n: p.n, amount: p.cents / 100 }) },
      schema: z.object({ n: z.number().int(), amount: z.number() }),
    });
    await consumer.start();
    await waitFor(
      async () => {
        const m = await consumer.metrics();
        return m.zeroloss_consumer_processed_total === CASES.length + 1 && m.zeroloss_consumer_dead_lettered_total === CASES.length;
      },
      { what: 'all good messages applied and all bad ones dead-lettered', timeoutMs: 60_000 },
    );
  });

  after(async () => {
    await consumer?.stop();
    await publisher?.close();
    await env?.cleanup();
  });

  for (const c of CASES) {
    test(c.name, async () => {
      const at = placed.get(c.name);
      assert.ok(at, 'published');
      const { rows } = await env.pool.query(
        `select error_code, error, status, attempts, topic, msg_key from "${env.schema}".dead_letter where msg_offset = $1`,
        [at.bad.toString()],
      );
      assert.equal(rows.length, 1, 'exactly one dead letter for the bad record');
      assert.equal(rows[0].error_code, c.code);
      assert.match(rows[0].error, c.reason);
      assert.equal(rows[0].status, 'dead');
      assert.equal(rows[0].attempts, 0, 'bad input never reaches the handler');
      assert.equal(rows[0].topic, topic);
      const next = await env.pool.query(`select n from "${env.schema}".effect where n = $1`, [at.nextN]);
      assert.equal(next.rows.length, 1, 'the message after the bad one was applied');
    });
  }

  test('old versions are upcast and applied; all good messages are applied once, in order', async () => {
    const { rows } = await env.pool.query(`select n from "${env.schema}".effect order by id`);
    assert.deepEqual(
      rows.map((r) => r.n),
      Array.from({ length: CASES.length + 1 }, (_, i) => i + 1),
    );
  });
});
