import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
import { BROKERS, createEffectTable, createTopics, topicFamily, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { WorkerProcesses } from '../../helpers/consumer-processes.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { prng } from '../../helpers/prng.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * Acceptance 1 (C1-C4): MESSAGES messages over KEYS keys, with DUPLICATES exact copies injected on the
 * topic, consumed by 3 consumer processes while each is SIGKILLed and restarted at random moments.
 * The effect table must hold each message's effect exactly once, each key's effects in publish order, and
 * no message may be dead-lettered (a healthy message that shared a process with a crash is no poison).
 *
 * Sizes come from the environment so the same test runs small while developing:
 *   ZL_CRASH_MESSAGES (20000), ZL_CRASH_KEYS (200), ZL_CRASH_DUPLICATES (messages / 10),
 *   ZL_CRASH_KILLS_PER_WORKER (2), ZL_CRASH_SEED (random), ZL_CRASH_STATIC (1: static group membership)
 */
const MESSAGES = Number(process.env.ZL_CRASH_MESSAGES ?? 20_000);
const KEYS = Number(process.env.ZL_CRASH_KEYS ?? 200);
const DUPLICATES = Number(process.env.ZL_CRASH_DUPLICATES ?? Math.floor(MESSAGES / 10));
const KILLS_PER_WORKER = Number(process.env.ZL_CRASH_KILLS_PER_WORKER ?? 2);
const SEED = Number(process.env.ZL_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const WORKERS = ['w1', 'w2', 'w3'];

describe('three consumer processes SIGKILLed at random moments: each effect exactly once, in key order', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let workers: WorkerProcesses;
  const topic = uniqueId('zl-crash');

  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    await createTopics(topicFamily(topic), 6);
    workers = new WorkerProcesses({
      ZL_PG_URL: PG_URL,
      ZL_SCHEMA: env.schema,
      ZL_TOPIC: topic,
      ZL_GROUP: uniqueId('g'),
      ZL_KAFKA_BROKERS: BROKERS.join(','),
      ZL_STATIC: process.env.ZL_CRASH_STATIC ?? '1',
    });
  });

  after(async () => {
    await workers?.stopAll();
    await env?.cleanup();
  });

  test(`${MESSAGES} messages + ${DUPLICATES} duplicates over ${KEYS} keys, ${KILLS_PER_WORKER} SIGKILLs per process`, async () => {
    const random = prng(SEED);
    const started = Date.now();
    for (const w of WORKERS) workers.start(w);

    // Publish while the consumers run: keys interleaved, n = the key's own counter, duplicates as exact
    // copies of earlier records (same id and bytes), each after its original in the same partition.
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    const publishing = (async () => {
      const sent: OutgoingRecord[] = [];
      const chunk = 1_000;
      const perKey = new Map<string, number>();
      let duplicates = 0;
      for (let i = 0; i < MESSAGES; i += chunk) {
        const batch: OutgoingRecord[] = [];
        for (let j = i; j < Math.min(MESSAGES, i + chunk); j++) {
          const key = `key-${j % KEYS}`;
          const n = (perKey.get(key) ?? 0) + 1;
          perKey.set(key, n);
          batch.push(zlRecord({ topic, key, type: 'credit', payload: { n }, seq: n, producerId: 'crash-test' }));
        }
        sent.push(...batch);
        const due = Math.round((DUPLICATES * Math.min(MESSAGES, i + chunk)) / MESSAGES) - duplicates;
        for (let d = 0; d < due; d++) batch.push(sent[Math.floor(random() * sent.length)] as OutgoingRecord);
        duplicates += due;
        for (const outcome of await publisher.publish(batch)) assert.ok(outcome.ok, 'publish');
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    // Each process is killed KILLS_PER_WORKER times, at random moments 0.5-2.5 s apart, and restarted at once.
    const killing = (async () => {
      while (WORKERS.some((w) => (workers.kills.get(w) ?? 0) < KILLS_PER_WORKER)) {
        await new Promise((r) => setTimeout(r, 500 + random() * 2_000));
        const candidates = WORKERS.filter((w) => (workers.kills.get(w) ?? 0) < KILLS_PER_WORKER);
        await workers.killAndRestart(candidates[Math.floor(random() * candidates.length)] as string);
      }
    })();

    await Promise.all([publishing, killing]);
    await publisher.close();
    await waitFor(
      async () => (await env.pool.query(`select count(distinct message_id)::int as n from "${env.schema}".effect`)).rows[0].n === MESSAGES,
      { what: `${MESSAGES} effects`, timeoutMs: 300_000, intervalMs: 250 },
    ).catch((error) => {
      for (const w of WORKERS) console.error(`--- ${w}\n${workers.logs(w)}`);
      console.error(workers.errors.slice(0, 20).join('\n'));
      throw error;
    });

    const { rows: totals } = await env.pool.query(
      `select count(*)::int as effects, count(distinct message_id)::int as messages from "${env.schema}".effect`,
    );
    assert.deepEqual(totals[0], { effects: MESSAGES, messages: MESSAGES }, 'each message applied exactly once');
    const { rows: keys } = await env.pool.query(
      `select msg_key, array_agg(n order by id) as ns from "${env.schema}".effect group by msg_key order by msg_key`,
    );
    assert.equal(keys.length, KEYS);
    for (const { msg_key, ns } of keys) {
      const inOrder = (ns as number[]).every((n, i) => n === i + 1);
      assert.ok(inOrder, `key ${msg_key}: effects in publish order (got ${(ns as number[]).slice(0, 20).join(',')}...)`);
    }
    const { rows: dead } = await env.pool.query(`select count(*)::int as n from "${env.schema}".dead_letter`);
    assert.equal(dead[0].n, 0, 'nothing dead-lettered: no healthy message was taken for poison');
    const kills = [...workers.kills.values()].reduce((a, b) => a + b, 0);
    console.log(
      `[crash] seed ${SEED}: ${MESSAGES} messages + ${DUPLICATES} injected duplicates over ${KEYS} keys, ${kills} SIGKILLs, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `[crash] effects in table: ${totals[0].effects} (each message once); reported by workers before their deaths: ` +
        `processed ${workers.totals.processed}, duplicates skipped ${workers.totals.duplicates} ` +
        `(${DUPLICATES} injected + ~${Math.max(0, workers.totals.duplicates - DUPLICATES)} redelivered after crashes)`,
    );
  });
});
