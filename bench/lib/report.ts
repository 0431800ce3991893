import type { BenchResult } from './result.ts';

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** The markdown table docs/benchmarks.md shows. */
export function formatTable(results: BenchResult[]): string {
  const lines = [
    '| benchmark | msgs | zeroloss msg/s | baseline msg/s | ratio | p50 ms | p99 ms | baseline p50 / p99 ms | peak RSS MiB | target |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of results) {
    const t = r.target;
    const target = t ? `${t.metric} ${t.op} ${t.value}: ${t.met ? 'met' : 'NOT met'}` : '';
    lines.push(
      `| ${r.name} | ${r.messages} | ${fmt(r.throughput)} | ${fmt(r.baselineThroughput)} | ${fmt(r.ratio, 2)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.baseline.p50Ms, 1)} / ${fmt(r.baseline.p99Ms, 1)} | ${fmt(r.rssMb)} | ${target} |`,
    );
  }
  return lines.join('\n');
}
