import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';

import type { Publisher } from '../src/ports/transport.ts';
import { consumeWithZeroloss, kafkaSubscriber } from './consumer.ts';
import { type BenchEnv, benchSchema, createTopic, deleteTopics, rawProducer, rawSend, uniqueTopic, zeroRecord } from './lib/env.ts';
import { describe, type Reps, type RunResult, summarise } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { drainWithRelay, fillOutbox } from './relay.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

const PARTITIONS = 6;

/** The scale grid: instances at 100 keys, keys at one instance. The first entry is the reference. */
const GRID = [
  { instances: 1, keys: 100 },
  { instances: 2, keys: 100 },
  { instances: 4, keys: 100 },
  { instances: 1, keys: 10 },
  { instances: 1, keys: 1 },
] as const;

type Cell = (typeof GRID)[number];

/**
 * Runs every cell of the grid `reps` times, rotating the order each round so no cell always runs first,
 * and reports each cell against the reference cell (1 instance, 100 keys) of the same run.
 */
async function grid(
  env: BenchEnv,
  path: 'relay' | 'consumer',
  messages: number,
  reps: Reps,
  run: (cell: Cell) => Promise<RunResult>,
): Promise<BenchResult[]> {
  const results = new Map<Cell, RunResult[]>(GRID.map((c) => [c, []]));
  await run(GRID[0]).then((r) => env.log(`  warm-up ${path} 1 instance, 100 keys: ${describe(r)}`));
  for (let rep = 0; rep < reps.reps; rep++) {
    for (let j = 0; j < GRID.length; j++) {
      const cell = GRID[(j + rep) % GRID.length] as Cell;
      const r = await run(cell);
      env.log(`  rep ${rep + 1} ${path} ${cell.instances} instance(s), ${cell.keys} key(s): ${describe(r)}`);
      results.get(cell)?.push(r);
    }
  }
  const reference = summarise(results.get(GRID[0]) ?? []);
  return GRID.map((cell) =>
    makeResult({
      name: `scale-${path}-${cell.instances}i-${cell.keys}k`,
      messages,
      zeroloss: summarise(results.get(cell) ?? []),
      baseline: reference,
      baselineName: `zeroloss ${path}, 1 instance, 100 keys (same run)`,
      latencyOf: path === 'relay' ? 'batch: claim to sent recorded' : 'message: arrival to effect committed',
      reps: reps.reps,
      notes: `${cell.instances} ${path} instance(s) in this process (own pool connections and Kafka clients), ${cell.keys} key(s), ${PARTITIONS} partitions; ratio = speed-up over 1 instance, 100 keys`,
    }),
  );
}

export async function scaleBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  const s = await benchSchema(env, 'zlb_scale', 30);
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  const publishers: Publisher[] = Array.from(
    { length: 4 },
    (_, i) => new KafkaPublisher({ brokers: env.brokers, clientId: `zl-bench-scale-${i}` }),
  );
  const topics: string[] = [];
  try {
    const relayTopic = uniqueTopic('zlb-scale-relay');
    topics.push(relayTopic);
    await createTopic(env, relayTopic, PARTITIONS);
    const relay = await grid(env, 'relay', messages, reps, async (cell) => {
      await fillOutbox({ transaction: (fn) => s.db.transaction(fn), outbox, topic: relayTopic, messages, keys: cell.keys });
      return drainWithRelay({ db: s.db, schema: s.schema, publishers: publishers.slice(0, cell.instances), messages });
    });
    const producer = rawProducer(env, 'zl-bench-scale-fill');
    try {
      const consumer = await grid(env, 'consumer', messages, reps, async (cell) => {
        const topic = uniqueTopic('zlb-scale-consumer');
        topics.push(topic);
        await createTopic(env, topic, PARTITIONS);
        const records = Array.from({ length: messages }, (_, i) => zeroRecord(topic, i, cell.keys, Math.floor(i / cell.keys) + 1));
        return consumeWithZeroloss({
          subscriber: kafkaSubscriber(env),
          db: s.db,
          schema: s.schema,
          topics: [topic],
          messages,
          instances: cell.instances,
          fill: { partitions: PARTITIONS, send: async () => void (await rawSend(producer, records, 500, 2)) },
        });
      });
      return [...relay, ...consumer];
    } finally {
      await producer.close(true).catch(() => {});
    }
  } finally {
    await Promise.all(publishers.map((p) => p.close().catch(() => {})));
    await deleteTopics(env, topics);
    await s.drop();
  }
}
