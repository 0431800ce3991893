/**
 * `npm run bench -- [name|all] [--messages N] [--reps N] [--warmup N] [--rate N] [--json]`
 *
 * Measures each zeroloss path against the unsafe or unguarded way of doing the same thing, on the same
 * broker and database in the same run, repetitions interleaved, and prints ratios. Absolute numbers on a
 * shared machine are noise; the ratios are the result. Progress goes to stderr; with --json, stdout
 * carries only the JSON array of results.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { down, up } from '../infra/kafka/kafka.ts';
import type { BenchEnv } from './lib/env.ts';
import type { Reps } from './lib/measure.ts';
import { formatTable } from './lib/report.ts';
import type { BenchResult } from './lib/result.ts';
import { BENCHMARKS, type BenchName } from './benchmarks.ts';
import { debeziumPeerBench } from './peer-debezium.ts';
import { type RelayMemoryResult, relayMemoryBench } from './relay-memory.ts';
import { rabbitmqBenches } from './rabbitmq.ts';
import { redisBenches } from './redis.ts';

/** Measurements against fixed targets rather than a baseline; minutes each, so they run only when named. */
const MEASUREMENTS = {
  'relay-memory': { defaultMessages: 200_000, run: relayMemoryBench },
} satisfies Record<string, { defaultMessages: number; run: (env: BenchEnv, messages: number) => Promise<unknown> }>;
type MeasurementName = keyof typeof MEASUREMENTS;

/**
 * The other transports' relay and consumer against their raw clients; no Kafka needed, so only when named.
 * 5,000 messages: with 1,000 a repetition was two relay rounds and a consumer's join and first fetch, so
 * start-up, not throughput, set the ratio (0.42 vs 0.70 for the Redis consumer on the same quiet machine).
 */
const TRANSPORTS = {
  redis: {
    defaultMessages: 5_000,
    run: redisBenches,
  },
  rabbitmq: {
    defaultMessages: 5_000,
    run: rabbitmqBenches,
  },
} satisfies Record<string, (typeof BENCHMARKS)[BenchName]>;
type TransportName = keyof typeof TRANSPORTS;

/**
 * Another product's process side by side with zeroloss (a JVM fetched with Maven on first use, warmed a
 * minute); minutes each, so only when named. Five reps unless --reps says otherwise.
 */
const PEERS = {
  'peer-debezium': { defaultMessages: 20_000, defaultReps: 5, run: async (env, n, reps) => [await debeziumPeerBench(env, n, reps)] },
} satisfies Record<string, (typeof BENCHMARKS)[BenchName] & { defaultReps: number }>;
type PeerName = keyof typeof PEERS;

interface Args {
  names: BenchName[];
  measurements: MeasurementName[];
  transports: TransportName[];
  peers: PeerName[];
  messages: number | undefined;
  reps: Reps;
  repsGiven: boolean;
  json: boolean;
  /** Offered rate of the e2e benchmark (default 1,000 msg/s). */
  rate: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const names: BenchName[] = [];
  const measurements: MeasurementName[] = [];
  const transports: TransportName[] = [];
  const peers: PeerName[] = [];
  let repsGiven = false;
  let messages: number | undefined;
  const reps: Reps = { warmup: 1, reps: 3 };
  let json = false;
  let rate: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${arg} needs a non-negative integer`);
      return v;
    };
    if (arg === '--json') json = true;
    else if (arg === '--messages') messages = value();
    else if (arg === '--reps') {
      reps.reps = Math.max(1, value());
      repsGiven = true;
    } else if (arg === '--warmup') reps.warmup = value();
    else if (arg === '--rate') rate = Math.max(1, value());
    else if (arg === 'all') names.push(...(Object.keys(BENCHMARKS) as BenchName[]));
    else if (arg in BENCHMARKS) names.push(arg as BenchName);
    else if (arg in MEASUREMENTS) measurements.push(arg as MeasurementName);
    else if (arg in TRANSPORTS) transports.push(arg as TransportName);
    else if (arg in PEERS) peers.push(arg as PeerName);
    else {
      throw new Error(
        `unknown argument ${arg}; benchmarks: all, ${[...Object.keys(BENCHMARKS), ...Object.keys(MEASUREMENTS)].join(', ')}, ${[...Object.keys(TRANSPORTS), ...Object.keys(PEERS)].join(', ')}`,
      );
    }
  }
  if (names.length === 0 && measurements.length === 0 && transports.length === 0 && peers.length === 0)
    names.push(...(Object.keys(BENCHMARKS) as BenchName[]));
  return {
    names: [...new Set(names)],
    measurements: [...new Set(measurements)],
    transports: [...new Set(transports)],
    peers: [...new Set(peers)],
    messages,
    reps,
    repsGiven,
    json,
    rate,
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let startedKafka = false;
  let brokers = process.env.ZL_KAFKA_BROKERS?.split(',') ?? [];
  if (brokers.length === 0 && (args.names.length > 0 || args.measurements.length > 0 || args.peers.length > 0)) {
    const kafka = await up({ mode: 'single' });
    startedKafka = kafka.startedHere;
    brokers = kafka.brokers;
  }
  const env: BenchEnv = {
    pgUrl: process.env.ZL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    brokers,
    log,
    ...(args.rate ? { e2eRate: args.rate } : {}),
  };
  log(`[bench] ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  log(
    `[bench] load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  log(`[bench] kafka ${brokers.join(',') || '-'}; postgres ${env.pgUrl}; warm-up ${args.reps.warmup}, reps ${args.reps.reps}`);
  const results: BenchResult[] = [];
  const measured: RelayMemoryResult[] = [];
  const t0 = Date.now();
  try {
    for (const name of args.names) {
      const bench = BENCHMARKS[name];
      const started = Date.now();
      log(`[bench] ${name} (${args.messages ?? bench.defaultMessages} messages)`);
      results.push(...(await bench.run(env, args.messages ?? bench.defaultMessages, args.reps)));
      log(`[bench] ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    for (const name of args.transports) {
      const bench = TRANSPORTS[name];
      const started = Date.now();
      log(`[bench] ${name} (${args.messages ?? bench.defaultMessages} messages)`);
      results.push(...(await bench.run(env, args.messages ?? bench.defaultMessages, args.reps)));
      log(`[bench] ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    for (const name of args.peers) {
      const bench = PEERS[name];
      const started = Date.now();
      const reps = args.repsGiven ? args.reps : { ...args.reps, reps: bench.defaultReps };
      log(`[bench] ${name} (${args.messages ?? bench.defaultMessages} messages, ${reps.reps} reps)`);
      results.push(...(await bench.run(env, args.messages ?? bench.defaultMessages, reps)));
      log(`[bench] ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    for (const name of args.measurements) {
      const m = MEASUREMENTS[name];
      const started = Date.now();
      log(`[bench] ${name} (${args.messages ?? m.defaultMessages} messages)`);
      measured.push(await m.run(env, args.messages ?? m.defaultMessages));
      log(`[bench] ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  } finally {
    if (startedKafka && !process.env.ZL_KEEP_KAFKA) await down({ mode: 'single' }).catch(() => {});
  }
  log(
    `[bench] load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  log(`[bench] all done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (args.json) process.stdout.write(`${JSON.stringify([...results, ...measured], null, 2)}\n`);
  else {
    if (results.length > 0) process.stdout.write(`${formatTable(results)}\n`);
    for (const m of measured) process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`[bench] failed: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(1);
  },
);
