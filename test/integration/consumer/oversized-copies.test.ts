import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { dlqCommand } from '../../../src/cli/commands/dlq.ts';
import type { CopyRejectedEvent, DeadLetterEvent } from '../../../src/consumer/consumer-events.ts';
import { PermanentError, RetryableError } from '../../../src/core/errors.ts';
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
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { quietly } from '../../helpers/ops-cli.ts';

/** Kafka's default max.message.bytes of a topic: one record batch, after compression. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

/**
 * A record just under the topic's limit: the source accepts it, a copy with a few hundred bytes of extra
 * headers does not. Sized from the record's own encoding (batch header 61 bytes, record framing ~20) so the
 * margin left is under 200 bytes whatever the envelope headers weigh (a retry copy adds about 300).
 */
function nearLimit(record: OutgoingRecord): OutgoingRecord {
  const headerBytes = Object.entries(record.headers).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 4, 0);
  const room = DEFAULT_MAX_MESSAGE_BYTES - 61 - 30 - Buffer.byteLength(record.key) - headerBytes - 100;
  const value = Buffer.from(JSON.stringify({ blob: 'x'.repeat(room - 12) }), 'utf8');
  return { ...record, value };
}

const subscriberConfig = { brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 };

/**
 * Issue 11, finding 6: a permanently failing record just under 1 MiB got its dead-letter row, but its copy
 * on a default-size `.dlq` topic (extra failure headers) was rejected as too large, so the record never
 * finished and its partition stalled. Now the copy is optional: the table keeps the dead letter alone, the
 * offset moves on, and an alarm says the copy was not written.
 */
describe('copies that do not fit their topic never stall a partition', () => {
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

  const effects = async (key: string) =>
    (await env.pool.query(`select count(*)::int as n from "${env.schema}".effect where msg_key = $1`, [key])).rows[0].n as number;
  // Each test uses its own keys: the effect table is shared.

  test('a dead letter whose .dlq copy is too large is kept in the table alone; the partition moves on', async () => {
    const topic = uniqueId('zl-big');
    // One partition, both topics at the broker's default max.message.bytes.
    await createTopics(topicFamily(topic), 1);
    let fixed = false;
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50, retry: { maxRetries: 0 } },
    });
    const rejected: CopyRejectedEvent[] = [];
    const deadLetters: DeadLetterEvent[] = [];
    const committed: bigint[] = [];
    consumer.on('copy-rejected', (e) => rejected.push(e));
    consumer.on('dead-letter', (e) => deadLetters.push(e));
    consumer.on('committed', (offsets) => committed.push(...offsets.map((o) => o.offset)));
    consumer.handle('big', async (m, ctx) => {
      if (!fixed) throw new PermanentError('the prize catalogue refuses this entry');
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: 0, type: m.type });
    });
    consumer.handle<{ n: number }>('small', async (m, ctx) => {
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
    });
    const big = nearLimit(zlRecord({ topic, key: 'k1', type: 'big', payload: {} }));
    const records = [
      big,
      zlRecord({ topic, key: 'k1', type: 'small', payload: { n: 1 } }),
      zlRecord({ topic, key: 'k2', type: 'small', payload: { n: 2 } }),
    ];
    for (const record of records) {
      const [outcome] = await publisher.publish([record]);
      assert.ok(outcome?.ok, `source topic accepts the record (${record.value.length} bytes)`);
    }
    await consumer.start();
    try {
      // Offsets 0 (big), 1, 2: committing 3 means the big record finished.
      await waitFor(() => committed.some((o) => o >= 3n), { what: 'offset committed past the oversized dead letter', timeoutMs: 30_000 });
      assert.equal(await effects('k1'), 1, 'the later record of the same key was applied');
      assert.equal(await effects('k2'), 1, 'the record of another key was applied');
      const { rows } = await env.pool.query(
        `select id::text, published_at, copy_error, length(payload) as bytes from "${env.schema}".dead_letter where msg_type = 'big'`,
      );
      assert.equal(rows.length, 1, 'the dead letter is in the table');
      assert.equal(rows[0].published_at, null, 'no copy on the .dlq topic');
      assert.match(rows[0].copy_error, /MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/);
      assert.equal(rows[0].bytes, big.value.length, 'the original bytes are kept whole');
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0]?.kind, 'dead-letter');
      assert.equal(rejected[0]?.copyTopic, `${topic}.dlq`);
      assert.equal(rejected[0]?.deadLetterId, rows[0].id);
      assert.equal(deadLetters.length, 1);
      const metrics = await consumer.metrics();
      assert.equal(metrics.zeroloss_consumer_copies_rejected_total, 1);

      // dlq show and replay work from the table: the replay goes to the source topic, where it fits.
      const cli = ['--pg', PG_URL, '--schema', env.schema, '--kafka', BROKERS.join(','), '--json'];
      const shown = await captured(() => dlqCommand(['show', rows[0].id, '--pg', PG_URL, '--schema', env.schema]));
      assert.equal(shown.code, 0);
      assert.match(shown.out, /on \.dlq topic {2}not written \(ZL_SEND_REJECTED[^\n]*; the table holds it/);
      assert.equal(await quietly(() => dlqCommand(['list', ...cli])), 0);
      fixed = true;
      assert.equal(await quietly(() => dlqCommand(['replay', rows[0].id, ...cli])), 0);
      await waitFor(async () => (await effects('k1')) === 2, { what: 'the replayed oversized message applied' });
    } finally {
      await consumer.stop();
    }
  });

  test('a retry copy too large for its .retry topic is retried in place instead; nothing stalls', async () => {
    const topic = uniqueId('zl-bigretry');
    await createTopics(topicFamily(topic, 1), 1);
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber(subscriberConfig),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50 },
    });
    const rejected: CopyRejectedEvent[] = [];
    const committed: bigint[] = [];
    consumer.on('copy-rejected', (e) => rejected.push(e));
    consumer.on('committed', (offsets) => committed.push(...offsets.filter((o) => o.topic === topic).map((o) => o.offset)));
    const attempts: number[] = [];
    consumer.handle(
      'flaky',
      async (m, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 2) throw new RetryableError('catalogue busy');
        await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: 0, type: m.type });
      },
      { retry: { mode: 'topic', maxRetries: 1, delayMs: 20 } },
    );
    consumer.handle<{ n: number }>('small', async (m, ctx) => {
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
    });
    for (const record of [
      nearLimit(zlRecord({ topic, key: 'r1', type: 'flaky', payload: {} })),
      zlRecord({ topic, key: 'r1', type: 'small', payload: { n: 1 } }),
    ]) {
      const [outcome] = await publisher.publish([record]);
      assert.ok(outcome?.ok);
    }
    await consumer.start();
    try {
      await waitFor(() => committed.some((o) => o >= 2n), { what: 'offset committed past the oversized retry', timeoutMs: 30_000 });
      assert.deepEqual(attempts, [1, 2], 'the second attempt ran in place');
      assert.equal(await effects('r1'), 2);
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0]?.kind, 'retry');
      assert.equal(rejected[0]?.copyTopic, `${topic}.retry.1`);
      const { rows } = await env.pool.query(`select count(*)::int as n from "${env.schema}".dead_letter where topic = $1`, [topic]);
      assert.equal(rows[0].n, 0, 'nothing was dead-lettered');
    } finally {
      await consumer.stop();
    }
  });
});

/** Runs a CLI command and returns its exit status with what it printed. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await fn(), out };
  } finally {
    process.stdout.write = write;
  }
}
