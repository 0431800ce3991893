import { consumerBench } from './consumer.ts';
import { consumerKeysBench } from './consumer-keys.ts';
import { e2eBench } from './e2e.ts';
import { embeddedBench } from './embedded.ts';
import { enqueueBench } from './enqueue.ts';
import type { BenchEnv } from './lib/env.ts';
import type { Reps } from './lib/measure.ts';
import type { BenchResult } from './lib/result.ts';
import { peerBench } from './peer.ts';
import { relayBench, walRelayBench } from './relay.ts';
import { scaleBench, scaleIoBench } from './scale.ts';

export interface Benchmark {
  /** Messages per path and repetition when --messages is not given. */
  defaultMessages: number;
  run(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]>;
}

/** Every benchmark, in the order `all` runs them. */
export const BENCHMARKS = {
  relay: { defaultMessages: 10_000, run: async (env, n, reps) => [await relayBench(env, n, reps), ...(await walRelayBench(env, n, reps))] },
  enqueue: { defaultMessages: 3_000, run: (env, n, reps) => enqueueBench(env, n, reps) },
  consumer: { defaultMessages: 6_000, run: (env, n, reps) => consumerBench(env, n, reps) },
  'consumer-keys': { defaultMessages: 3_000, run: (env, n, reps) => consumerKeysBench(env, n, reps) },
  e2e: { defaultMessages: 8_000, run: async (env, n, reps) => [await e2eBench(env, n, reps)] },
  'e2e-wal': { defaultMessages: 8_000, run: async (env, n, reps) => [await e2eBench(env, n, reps, 'wal')] },
  scale: { defaultMessages: 20_000, run: (env, n, reps) => scaleBench(env, n, reps) },
  'scale-io': { defaultMessages: 10_000, run: (env, n, reps) => scaleIoBench(env, n, reps) },
  peer: { defaultMessages: 1_000, run: async (env, n, reps) => [await peerBench(env, n, reps)] },
  embedded: { defaultMessages: 2_000, run: (env, n, reps) => embeddedBench(env, n, reps, env.log) },
} satisfies Record<string, Benchmark>;

export type BenchName = keyof typeof BENCHMARKS;
