/**
 * Measurement primitives for the benchmarks: percentiles, a peak-RSS sampler, and the A/B runner that
 * interleaves zeroloss and baseline repetitions so that noise from the shared machine hits both alike.
 */

/** Percentile (0..100) of a sample by nearest rank; NaN for an empty sample. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Collects garbage first when the process runs with --expose-gc, so one run's heap is not charged to the next. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Samples this process's resident set every `everyMs` until stopped; returns the peak in MiB. */
export function rssSampler(everyMs = 50): { stop: () => number } {
  collectGarbage();
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak / 1_048_576;
    },
  };
}

/** What one timed run of one path produced. */
export interface RunResult {
  messages: number;
  seconds: number;
  /** Per-unit latencies in ms (a message, a transaction or a batch, as the benchmark defines). */
  latenciesMs: number[];
  rssMb: number;
}

/** The medians over the measured repetitions of one path. */
export interface PathSummary {
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  rssMb: number;
  /** Throughput of each measured repetition, for the spread. */
  runs: number[];
}

export function summarise(runs: RunResult[]): PathSummary {
  const throughputs = runs.map((r) => r.messages / r.seconds);
  return {
    throughput: median(throughputs),
    p50Ms: median(runs.map((r) => percentile(r.latenciesMs, 50))),
    p99Ms: median(runs.map((r) => percentile(r.latenciesMs, 99))),
    rssMb: Math.max(...runs.map((r) => r.rssMb)),
    runs: throughputs,
  };
}

/** Times `fn` with an RSS sampler around it; `fn` returns its message count and latencies. */
export async function timed(fn: () => Promise<{ messages: number; latenciesMs: number[]; seconds?: number }>): Promise<RunResult> {
  const rss = rssSampler();
  const t0 = performance.now();
  const out = await fn();
  const seconds = out.seconds ?? (performance.now() - t0) / 1000;
  return { messages: out.messages, seconds, latenciesMs: out.latenciesMs, rssMb: rss.stop() };
}

export interface Reps {
  warmup: number;
  reps: number;
}

/**
 * Runs warm-up rounds (discarded), then `reps` measured rounds, each round A then B, alternating which
 * goes first (A/B, B/A, ...) so neither path always runs on a warmer or a busier machine.
 */
export async function interleaved(
  reps: Reps,
  a: (rep: number) => Promise<RunResult>,
  b: (rep: number) => Promise<RunResult>,
  log: (line: string) => void,
): Promise<{ a: PathSummary; b: PathSummary }> {
  const as: RunResult[] = [];
  const bs: RunResult[] = [];
  for (let i = 0; i < reps.warmup + reps.reps; i++) {
    const warm = i < reps.warmup;
    const order = i % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
    for (const which of order) {
      const result = which === 'a' ? await a(i) : await b(i);
      log(`  ${warm ? 'warm-up' : `rep ${i - reps.warmup + 1}`} ${which === 'a' ? 'zeroloss' : 'baseline'}: ${describe(result)}`);
      if (!warm) (which === 'a' ? as : bs).push(result);
    }
  }
  return { a: summarise(as), b: summarise(bs) };
}

/**
 * `interleaved` for more than two paths: each round runs every path once, rotating which goes first, so
 * drift in the machine's load falls on all of them alike.
 */
export async function interleavedPaths<K extends string>(
  reps: Reps,
  paths: Record<K, (rep: number) => Promise<RunResult>>,
  log: (line: string) => void,
): Promise<Record<K, PathSummary>> {
  const names = Object.keys(paths) as K[];
  const results = new Map<K, RunResult[]>(names.map((n) => [n, []]));
  for (let i = 0; i < reps.warmup + reps.reps; i++) {
    const warm = i < reps.warmup;
    const shift = i % names.length;
    for (const name of [...names.slice(shift), ...names.slice(0, shift)]) {
      const result = await paths[name](i);
      log(`  ${warm ? 'warm-up' : `rep ${i - reps.warmup + 1}`} ${name}: ${describe(result)}`);
      if (!warm) results.get(name)?.push(result);
    }
  }
  return Object.fromEntries(names.map((n) => [n, summarise(results.get(n) ?? [])])) as Record<K, PathSummary>;
}

export function describe(r: RunResult): string {
  return `${r.messages} in ${r.seconds.toFixed(2)} s = ${Math.round(r.messages / r.seconds)}/s, p50 ${percentile(r.latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(r.latenciesMs, 99).toFixed(1)} ms, rss ${r.rssMb.toFixed(0)} MiB`;
}

/** Resolves when `check` returns true, polling every `everyMs`; rejects after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Open-loop load: starts transaction k at t0 + k / rate seconds whether or not earlier ones finished, so
 * a slow path shows up as latency instead of quietly lowering the offered rate.
 */
export async function openLoop(count: number, rate: number, run: (k: number) => Promise<void>): Promise<void> {
  const t0 = performance.now();
  const running: Promise<void>[] = [];
  let k = 0;
  await new Promise<void>((resolve, reject) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      for (; k < due; k++) running.push(run(k).catch(reject));
      if (k >= count) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  await Promise.all(running);
}
