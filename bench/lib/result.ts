import type { PathSummary } from './measure.ts';

/**
 * One line of the report. The first eight keys are the stable JSON contract (`npm run bench -- --json`);
 * the rest say what the numbers mean. `ratio` is always zeroloss throughput over baseline throughput, so
 * higher is better everywhere (for enqueue, the time overhead is 1 / ratio).
 */
export interface BenchResult {
  name: string;
  messages: number;
  throughput: number;
  baselineThroughput: number;
  ratio: number;
  p50Ms: number;
  p99Ms: number;
  rssMb: number;
  baseline: { name: string; p50Ms: number; p99Ms: number; rssMb: number };
  /** What one latency sample is: a message, a transaction or a batch. */
  latencyOf: string;
  target?: { metric: 'ratio' | 'overhead' | 'p99Ms'; op: '>=' | '<=' | '<'; value: number; met: boolean };
  reps: number;
  /** Throughput of each measured repetition (zeroloss, baseline), for the spread. */
  runs: { zeroloss: number[]; baseline: number[] };
  notes?: string;
}

const round = (n: number, digits = 2) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

export function makeResult(options: {
  name: string;
  messages: number;
  zeroloss: PathSummary;
  baseline: PathSummary;
  baselineName: string;
  latencyOf: string;
  reps: number;
  target?: { metric: 'ratio' | 'overhead' | 'p99Ms'; op: '>=' | '<=' | '<'; value: number };
  notes?: string;
}): BenchResult {
  const { zeroloss: z, baseline: b } = options;
  const ratio = z.throughput / b.throughput;
  let target: BenchResult['target'];
  if (options.target) {
    const actual = options.target.metric === 'ratio' ? ratio : options.target.metric === 'overhead' ? 1 / ratio : z.p99Ms;
    const { op, value } = options.target;
    target = { ...options.target, met: op === '>=' ? actual >= value : op === '<=' ? actual <= value : actual < value };
  }
  return {
    name: options.name,
    messages: options.messages,
    throughput: round(z.throughput, 1),
    baselineThroughput: round(b.throughput, 1),
    ratio: round(ratio, 3),
    p50Ms: round(z.p50Ms),
    p99Ms: round(z.p99Ms),
    rssMb: round(z.rssMb, 0),
    baseline: { name: options.baselineName, p50Ms: round(b.p50Ms), p99Ms: round(b.p99Ms), rssMb: round(b.rssMb, 0) },
    latencyOf: options.latencyOf,
    ...(target ? { target } : {}),
    reps: options.reps,
    runs: { zeroloss: z.runs.map((r) => round(r, 0)), baseline: b.runs.map((r) => round(r, 0)) },
    ...(options.notes ? { notes: options.notes } : {}),
  };
}
