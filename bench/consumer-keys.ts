import { CONSUMER_CONCURRENCY, consumeWithZeroloss, filledTopic, kafkaSubscriber } from './consumer.ts';
import { type BenchEnv, benchSchema, deleteTopics } from './lib/env.ts';
import { interleavedPaths, type Reps } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';

/**
 * Hot keys (issue #18, acceptance 2): one zeroloss consumer instance (defaults, 64 lanes) draining the same
 * number of records spread over 100 keys, over 10 keys and all under one key, interleaved in every round.
 * With one key every record waits for the one before it (per-key order), so only group commit along the key
 * (consecutive ready records of a key applied in one transaction) keeps it from one commit per record. The
 * reference is the same consumer on 100 keys in the same round: ratio = 1 key ÷ 100 keys.
 */
export async function consumerKeysBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  const s = await benchSchema(env, 'zlb_consumer_keys', 20);
  const topics = {
    spread: await filledTopic(env, 'zlb-keys100', messages, 100),
    few: await filledTopic(env, 'zlb-keys10', messages, 10),
    hot: await filledTopic(env, 'zlb-keys1', messages, 1),
  };
  try {
    const drain = (topic: string) => () =>
      consumeWithZeroloss({ subscriber: kafkaSubscriber(env), db: s.db, schema: s.schema, topics: [topic], messages, log: env.log });
    const r = await interleavedPaths(reps, { keys100: drain(topics.spread), keys10: drain(topics.few), key1: drain(topics.hot) }, env.log);
    const common = {
      messages,
      baseline: r.keys100,
      baselineName: `the same zeroloss consumer (one instance, ${CONSUMER_CONCURRENCY} lanes) on records spread over 100 keys, same round`,
      latencyOf: 'message: arrival in the process to effect committed',
      reps: reps.reps,
    };
    return [
      makeResult({ ...common, name: 'consumer-1-key', zeroloss: r.key1, target: { metric: 'ratio', op: '>=', value: 0.5 } }),
      makeResult({ ...common, name: 'consumer-10-keys', zeroloss: r.keys10 }),
    ];
  } finally {
    await deleteTopics(env, Object.values(topics));
    await s.drop();
  }
}
