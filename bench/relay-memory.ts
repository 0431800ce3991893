/**
 * `npm run -s bench -- relay-memory [--messages N] [--json]`: the memory and claim time of the installed
 * CLI relay (`bin/zeroloss.js relay`, on a fresh build of src/) while it idles and while it drains a
 * backlog of N outbox rows (default 200,000; ~300 B payloads, 1,000 keys) to the shared Kafka.
 *
 * RSS is VmRSS from /proc/<pid>/status every 200 ms. Claim times are the relay's own: with --verbose it
 * logs every round with the duration of its claim. The drain is split into quarters by claimed rows; the
 * claim's p95 of the last quarter over that of the first shows what dead rows cost.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import * as path from 'node:path';
import type pg from 'pg';
import { outboxSql } from '../src/adapters/postgres/outbox-sql.ts';
import { HEADER } from '../src/core/envelope.ts';
import { type BenchEnv, benchSchema, createTopic, deleteTopics, uniqueTopic } from './lib/env.ts';
import { percentile, until } from './lib/measure.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SAMPLE_MS = 200;
const IDLE_MS = 15_000;
const KEYS = 1_000;

export interface RelayMemoryResult {
  name: 'relay-memory';
  messages: number;
  /** Highest RSS in the idle window (relay started, outbox empty), start-up included. */
  idleRssMb: number;
  /** Median RSS in that window: what an idle relay holds once started. */
  idleMedianRssMb: number;
  /** Highest RSS from the first claim until the last row is sent. */
  drainPeakRssMb: number;
  claimP95FirstQuarterMs: number;
  claimP95LastQuarterMs: number;
  /** Last quarter's claim p95 over the first quarter's. */
  claimP95Ratio: number;
  /** Claim p95 of each tenth of the drain, to show the curve. */
  claimP95ByTenthMs: number[];
  claimRounds: number;
  /**
   * The claim statement's own execution time in Postgres (EXPLAIN ANALYZE of the same claim of 500, in a
   * transaction rolled back, once a second while the relay drains), p95 per quarter: what dead rows and
   * the plan cost, without the relay's event loop and the machine's other load.
   */
  claimExecP95FirstQuarterMs: number;
  claimExecP95LastQuarterMs: number;
  claimExecRatio: number;
  claimExecProbes: number;
  /**
   * The longest-running transaction of any other session in this database while the relay drained: it
   * holds back the removal of every dead row, so the claim steps over all of them (the shared test
   * database has other users).
   */
  oldestOtherTransactionS: number;
  throughput: number;
  drainMs: number;
  /** 1-minute load average before the idle window and after the drain: other work on the machine. */
  loadAverage: [number, number];
  targets: { idleRssMb: TargetCheck; drainPeakRssMb: TargetCheck; claimP95Ratio: TargetCheck };
  machine: string;
}

interface TargetCheck {
  max: number;
  met: boolean;
}

/** Compiles src/ the way `npm run build` does, into a scratch copy next to a copy of bin/, and returns the bin. */
function buildCli(): string {
  const dir = path.join(ROOT, 'node_modules', '.cache', 'zeroloss-bench');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  try {
    execFileSync(
      process.execPath,
      [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', path.join(dir, 'dist')],
      {
        cwd: ROOT,
        stdio: 'pipe',
      },
    );
  } catch {
    // Type errors still emit JavaScript (noEmitOnError is off); the relay below is what gets measured.
  }
  copyFileSync(path.join(ROOT, 'bin', 'zeroloss.js'), path.join(dir, 'bin', 'zeroloss.js'));
  return path.join(dir, 'bin', 'zeroloss.js');
}

function rssMb(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** One outbox row per g, as enqueue writes it: envelope headers, a ~300 B JSON payload, 1,000 keys. */
function fillSql(s: string): string {
  return `
    insert into ${s}.outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, key_seq, headers, payload)
    select id, $1, k, 'order.placed', id, 'bench', seq,
           jsonb_build_object('${HEADER.id}', id, '${HEADER.traceId}', id, '${HEADER.type}', 'order.placed',
             '${HEADER.version}', '1', '${HEADER.producerId}', 'bench', '${HEADER.seq}', seq::text,
             '${HEADER.createdAt}', now()::text, '${HEADER.contentType}', 'application/json'),
           convert_to(json_build_object('orderId', 'o-' || g, 'customer', k, 'amount', 1 + g % 100,
             'items', json_build_array(json_build_object('sku', 'sku-' || (g % 97), 'qty', 1 + g % 3),
                                       json_build_object('sku', 'sku-' || (g % 89), 'qty', 1)),
             'note', repeat('x', 150))::text, 'utf8')
    from (select g, 'bench-' || g as id, 'c-' || (g % ${KEYS}) as k, g / ${KEYS} + 1 as seq
          from generate_series(1, $2::int) g) v
    order by g`;
}

export async function relayMemoryBench(env: BenchEnv, messages: number): Promise<RelayMemoryResult> {
  env.log('[relay-memory] building the CLI');
  const bin = buildCli();
  const s = await benchSchema(env, 'zlb_mem', 3);
  const topic = uniqueTopic('zlb-mem');
  await createTopic(env, topic, 6);
  let child: ChildProcess | undefined;
  try {
    const rounds: Array<{ at: number; claimed: number; sent: number; claimMs: number }> = [];
    let started = false;
    let tail = '';
    child = spawn(
      process.execPath,
      [bin, 'relay', '--pg', env.pgUrl, '--schema', s.schema, '--kafka', env.brokers.join(','), '--verbose'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (chunk: Buffer) => {
      const lines = (tail + chunk.toString()).split('\n');
      tail = lines.pop() ?? '';
      // The relay logs JSON lines (stderr is a pipe here); with --verbose each round is one at debug.
      for (const line of lines) {
        if (line.includes('running on schema')) started = true;
        const round = parseRound(line);
        if (round) rounds.push({ at: Date.now(), ...round });
        else if (line.trim()) env.log(`[relay] ${line}`);
      }
    });
    const pid = child.pid as number;
    await until(() => started, 'the relay to start', 60_000);

    const loadBefore = loadavg()[0] ?? 0;
    env.log(`[relay-memory] idle for ${IDLE_MS / 1000} s`);
    const idle = await sample(pid, () => false, IDLE_MS);

    env.log(`[relay-memory] committing ${messages} rows`);
    await s.pool.query(fillSql(`"${s.schema}"`), [topic, messages]);
    const t0 = Date.now();
    const sentSoFar = () => rounds.reduce((n, r) => n + r.sent, 0);
    let oldestOther = 0;
    const probes: Array<{ quarter: number; ms: number }> = [];
    const claimSql = outboxSql(`"${s.schema}"`, { notifyChannel: undefined, holdKeyOnParked: true }).claim;
    let probing = false;
    const probe = setInterval(() => {
      if (probing) return;
      probing = true;
      const quarter = Math.min(3, Math.floor((sentSoFar() / messages) * 4));
      explainMs(s.pool, claimSql)
        .then((ms) => {
          if (ms !== undefined) probes.push({ quarter, ms });
        })
        .catch(() => {})
        .finally(() => {
          probing = false;
        });
    }, 1_000);
    const watch = setInterval(() => {
      s.pool
        .query<{ s: number | null }>(
          `select extract(epoch from max(now() - xact_start))::float8 as s from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null`,
        )
        .then(({ rows }) => {
          oldestOther = Math.max(oldestOther, rows[0]?.s ?? 0);
        })
        .catch(() => {});
    }, 1_000);
    const drain = await sample(pid, () => sentSoFar() >= messages, 30 * 60_000).finally(() => {
      clearInterval(watch);
      clearInterval(probe);
    });
    const drainMs = (rounds.at(-1)?.at ?? Date.now()) - t0;
    if (sentSoFar() < messages) throw new Error(`relay sent ${sentSoFar()} of ${messages} rows`);

    // Quarters by claimed rows: a round belongs to the quarter its first row falls in.
    const quarters: number[][] = [[], [], [], []];
    const tenths: number[][] = Array.from({ length: 10 }, () => []);
    let claimedBefore = 0;
    for (const r of rounds) {
      quarters[Math.min(3, Math.floor((claimedBefore / messages) * 4))]?.push(r.claimMs);
      tenths[Math.min(9, Math.floor((claimedBefore / messages) * 10))]?.push(r.claimMs);
      claimedBefore += r.claimed;
    }
    const first = percentile(quarters[0] ?? [], 95);
    const last = percentile(quarters[3] ?? [], 95);
    const round1 = (n: number) => Math.round(n * 10) / 10;
    const execFirst = percentile(
      probes.filter((p) => p.quarter === 0).map((p) => p.ms),
      95,
    );
    const execLast = percentile(
      probes.filter((p) => p.quarter === 3).map((p) => p.ms),
      95,
    );
    const idleRssMb = round1(Math.max(...idle));
    const idleMedianRssMb = round1(percentile(idle, 50));
    const drainPeakRssMb = round1(Math.max(...drain));
    const ratio = Math.round((last / first) * 100) / 100;
    return {
      name: 'relay-memory',
      messages,
      idleRssMb,
      idleMedianRssMb,
      drainPeakRssMb,
      claimP95FirstQuarterMs: round1(first),
      claimP95LastQuarterMs: round1(last),
      claimP95Ratio: ratio,
      claimP95ByTenthMs: tenths.map((t) => round1(percentile(t, 95))),
      claimRounds: rounds.length,
      claimExecP95FirstQuarterMs: round1(execFirst),
      claimExecP95LastQuarterMs: round1(execLast),
      claimExecRatio: Math.round((execLast / execFirst) * 100) / 100,
      claimExecProbes: probes.length,
      oldestOtherTransactionS: round1(oldestOther),
      throughput: Math.round(messages / (drainMs / 1000)),
      drainMs,
      loadAverage: [round1(loadBefore), round1(loadavg()[0] ?? 0)],
      targets: {
        // What an idle relay holds once started (the median of the window); the peak includes start-up.
        idleRssMb: { max: 100, met: idleMedianRssMb < 100 },
        drainPeakRssMb: { max: 250, met: drainPeakRssMb < 250 },
        claimP95Ratio: { max: 1.5, met: ratio <= 1.5 },
      },
      machine: `${cpus().length} cores, node ${process.version}`,
    };
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await s.drop();
    await deleteTopics(env, [topic]);
  }
}

/** RSS samples every SAMPLE_MS until `done` or `maxMs`. */
async function sample(pid: number, done: () => boolean, maxMs: number): Promise<number[]> {
  const samples: number[] = [];
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline && !done()) {
    const mb = rssMb(pid);
    if (mb === undefined) throw new Error('the relay process exited');
    samples.push(mb);
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  return samples;
}

/** Execution time of one claim of 500 as the relay runs it, in a transaction that is rolled back. */
async function explainMs(pool: pg.Pool, claimSql: string): Promise<number | undefined> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ 'Execution Time': number }> }>(
      `explain (analyze, format json) ${claimSql}`,
      ['zeroloss-bench-probe', 500, 60_000],
    );
    return rows[0]?.['QUERY PLAN'][0]?.['Execution Time'];
  } finally {
    await client.query('rollback').catch(() => {});
    client.release();
  }
}

/** A `relay round` log line's figures, or undefined for any other line. */
function parseRound(line: string): { claimed: number; claimMs: number; sent: number } | undefined {
  if (!line.includes('"relay round"')) return undefined;
  try {
    const r = JSON.parse(line) as { claimed: number; claimMs: number; sent: number };
    return { claimed: r.claimed, claimMs: r.claimMs, sent: r.sent };
  } catch {
    return undefined;
  }
}
