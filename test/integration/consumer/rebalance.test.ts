import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { BROKERS, createEffectTable, createTopics, insertEffect, topicFamily, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { assertExactlyOnceInOrder, effectCount, publishWorkload } from '../../helpers/consumer-workload.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { prng } from '../../helpers/prng.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';

/**
 * C2/C3 across rebalances: members join and leave while handlers are running. In-flight work is finished
 * before partitions move, so one key's handler never runs on two consumers at once, nothing is committed
 * past unfinished work, and every effect lands once, in key order.
 */
const MESSAGES = 3_000;
const KEYS = 30;

describe('rebalances while handlers run', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  const consumers = new Map<string, Consumer>();
  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    publisher = new KafkaPublisher({ brokers: BROKERS });
  });
  after(async () => {
    for (const c of consumers.values()) await c.stop();
    await publisher.close();
    await env.cleanup();
  });

  test('members join and leave mid-stream: one key never runs in two places, each effect once, in order', async () => {
    const topic = uniqueId('zl-rebalance');
    await createTopics(topicFamily(topic), 6);
    const groupId = uniqueId('g');
    const runs = new Map<string, Array<{ start: number; end: number; member: string }>>();
    const revokes: string[] = [];
    const random = prng(3);
    const start = async (member: string) => {
      const consumer = testConsumer({
        subscriber: new KafkaSubscriber({
          brokers: BROKERS,
          clientId: member,
          sessionTimeoutMs: 6_000,
          heartbeatIntervalMs: 300,
          maxWaitMs: 100,
        }),
        db: env.db,
        publisher,
        schema: env.schema,
        config: { groupId, topics: [topic], commitIntervalMs: 100, concurrency: 8 },
      });
      consumer.on('revoked', (partitions) => {
        if (partitions.length > 0) revokes.push(member);
      });
      consumer.handle<{ n: number }>('credit', async (m, ctx) => {
        const begin = performance.now();
        // Slow enough that a rebalance always catches some handlers mid-run.
        await new Promise((r) => setTimeout(r, 2 + random() * 8));
        await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
        runs.set(m.key, [...(runs.get(m.key) ?? []), { start: begin, end: performance.now(), member }]);
      });
      await consumer.start();
      consumers.set(member, consumer);
    };

    await start('a');
    const publishing = publishWorkload({ topic, messages: MESSAGES, keys: KEYS, duplicates: 100, chunk: 300, pauseMs: 100, random });
    await waitFor(async () => (await effectCount(env.pool, env.schema)) >= MESSAGES / 4, { what: 'a quarter', timeoutMs: 60_000 });
    await start('b');
    await waitFor(async () => (await effectCount(env.pool, env.schema)) >= MESSAGES / 2, { what: 'a half', timeoutMs: 60_000 });
    await start('c');
    await waitFor(async () => (await effectCount(env.pool, env.schema)) >= (MESSAGES * 3) / 4, {
      what: 'three quarters',
      timeoutMs: 60_000,
    });
    await consumers.get('a')?.stop();
    consumers.delete('a');
    await publishing;
    await waitFor(async () => (await effectCount(env.pool, env.schema)) === MESSAGES, { what: 'all', timeoutMs: 60_000 });

    await assertExactlyOnceInOrder(env.pool, env.schema, MESSAGES, KEYS);
    assert.ok(revokes.length >= 3, `partitions were revoked in rebalances (${revokes.join(',')})`);
    const members = new Set<string>();
    for (const [key, list] of runs) {
      const sorted = [...list].sort((x, y) => x.start - y.start);
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1] as (typeof sorted)[number];
        const cur = sorted[i] as (typeof sorted)[number];
        members.add(cur.member);
        assert.ok(cur.start >= prev.end, `key ${key}: a run on ${cur.member} started before the run on ${prev.member} ended`);
      }
    }
    assert.equal(members.size, 3, 'all three members handled messages');
  });
});
