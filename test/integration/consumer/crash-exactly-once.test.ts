import { after, before, describe, test } from 'node:test';
import { BROKERS, createEffectTable, createTopics, topicFamily, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { WorkerProcesses } from '../../helpers/consumer-processes.ts';
import { assertExactlyOnceInOrder, effectCount, publishWorkload } from '../../helpers/consumer-workload.ts';
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

    // Publish while the consumers run, duplicates injected as exact copies after their originals.
    const publishing = publishWorkload({ topic, messages: MESSAGES, keys: KEYS, duplicates: DUPLICATES, pauseMs: 200, random });

    // Each process is killed KILLS_PER_WORKER times, at random moments 0.5-2.5 s apart, and restarted at once.
    const killing = (async () => {
      while (WORKERS.some((w) => (workers.kills.get(w) ?? 0) < KILLS_PER_WORKER)) {
        await new Promise((r) => setTimeout(r, 500 + random() * 2_000));
        const candidates = WORKERS.filter((w) => (workers.kills.get(w) ?? 0) < KILLS_PER_WORKER);
        await workers.killAndRestart(candidates[Math.floor(random() * candidates.length)] as string);
      }
    })();

    await Promise.all([publishing, killing]);
    await waitFor(async () => (await effectCount(env.pool, env.schema)) === MESSAGES, {
      what: `${MESSAGES} effects`,
      timeoutMs: 300_000,
      intervalMs: 250,
    }).catch((error) => {
      for (const w of WORKERS) console.error(`--- ${w}\n${workers.logs(w)}`);
      console.error(workers.errors.slice(0, 20).join('\n'));
      throw error;
    });

    await assertExactlyOnceInOrder(env.pool, env.schema, MESSAGES, KEYS);
    const kills = [...workers.kills.values()].reduce((a, b) => a + b, 0);
    console.log(
      `[crash] seed ${SEED}: ${MESSAGES} messages + ${DUPLICATES} injected duplicates over ${KEYS} keys, ${kills} SIGKILLs, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s\n` +
        `[crash] effects in table: ${MESSAGES} (each message once); reported by workers before their deaths: ` +
        `processed ${workers.totals.processed}, duplicates skipped ${workers.totals.duplicates} ` +
        `(${DUPLICATES} injected + ~${Math.max(0, workers.totals.duplicates - DUPLICATES)} redelivered after crashes)`,
    );
  });
});
