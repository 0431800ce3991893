/**
 * The `embedded-host-kill` scenario (issue 19): the embedded default, one file-backed PGlite holding the
 * business tables, the outbox, the inbox and the table log, with the relay and the consumer in the same host
 * process (faults/embedded-host.ts), SIGKILLed at varying points many times and reopened on the same
 * directory each time until N committed messages are written; then a last life drains. Needs neither Kafka
 * nor the shared Postgres, so it runs here rather than in run-scenario.ts.
 *
 * The check is the suite's own (checker.ts `check`), run by this process on the directory once the last
 * life has exited, opened with PGlite directly: every id a host reported committed must be there, each order
 * row with its outbox row, each message's effect once, per key in commit order, nothing from a rolled-back
 * transaction.
 */
import { PGlite } from '@electric-sql/pglite';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type pg from 'pg';
import { pglite } from '../src/adapters/postgres/pglite.ts';
import { tableLog } from '../src/adapters/table-log/table-log-transport.ts';
import { prng } from '../test/helpers/prng.ts';
import { check, failures, type Figures } from './checker.ts';
import type { HostReport } from './embedded-host.ts';
import { PARTITIONS, type ScenarioResult, scenarioSeed } from './run-scenario.ts';
import { tableLogRecords, type TopicRecord } from './topic-reader.ts';
import { businessSchemaSql } from './workload.ts';

export const EMBEDDED_HOST_KILL = {
  name: 'embedded-host-kill',
  summary:
    'the embedded default (PGlite file + table log, relay and consumer in one host process) SIGKILLed 12-40 times mid-write and reopened [embedded]',
} as const;

const HOST = path.join(import.meta.dirname, 'embedded-host.ts');
const SCHEMA = 'fx_embedded';
const TOPIC = 'zl-fx-embedded';
/** A life that cannot open the directory within this long counts as a directory that does not reopen. */
const OPEN_TIMEOUT_MS = 120_000;

export interface EmbeddedOptions {
  messages: number;
  keys: number;
  seed: number;
  /** Committed messages per second each life's writers aim at (slower when the machine is). */
  rate: number;
  /** A life in which nothing moved for this long is given up on. */
  stallSeconds: number;
  broken?: 'effect-outside-transaction';
  log: (line: string) => void;
}

export type EmbeddedResult = ScenarioResult & {
  details: ScenarioResult['details'] & {
    lives: number;
    /** Lives killed while still opening the directory (PGlite recovery, migrations, relay and consumer start). */
    killedWhileOpening: number;
    /** Lives killed 0.5-4.5 s after they were ready, at a time rather than after a number of commits. */
    killedCatchingUp: number;
    /** Slowest and mean time from spawn to the host's relay and consumer running, ms. */
    maxOpenMs: number;
    meanOpenMs: number;
    /** Ids the hosts reported committed (commit returned); the database may hold a few more, unreported. */
    reportedCommitted: number;
    directory: string;
    /** PGlite's Postgres version, for the report's machine line. */
    database: string;
  };
};

/** One host process, and what it has said. */
class Life {
  readonly child: ChildProcess;
  ready = false;
  openMs = 0;
  committedHere = 0;
  progress: { pending: number; unsent: number } | undefined;
  lastMoveAt = Date.now();
  exited = false;
  readonly stderr: string[] = [];
  #waiters: Array<() => void> = [];

  constructor(n: number, dir: string, keys: number, rate: number, writing: boolean, broken: string, sink: (r: HostReport) => void) {
    this.child = spawn(process.execPath, [HOST], {
      env: {
        ...process.env,
        ZL_EH_DIR: dir,
        ZL_EH_SCHEMA: SCHEMA,
        ZL_EH_TOPIC: TOPIC,
        ZL_EH_LIFE: String(n),
        ZL_EH_KEYS: String(keys),
        ZL_EH_RATE: String(rate),
        ZL_EH_WRITE: writing ? '1' : '0',
        // Set either way, so a switch left in the caller's environment never breaks a normal run.
        ZL_EH_BREAK: broken,
      },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk.toString());
      if (this.stderr.length > 40) this.stderr.shift();
    });
    this.child.on('message', (r: HostReport) => {
      if (r.kind === 'ready') {
        this.ready = true;
        this.openMs = r.openMs;
      }
      if (r.kind === 'committed') this.committedHere += r.ids.length;
      if (r.kind === 'committed' || r.kind === 'rolled-back') this.lastMoveAt = Date.now();
      if (r.kind === 'progress') {
        if (this.progress?.pending !== r.pending || this.progress?.unsent !== r.unsent) this.lastMoveAt = Date.now();
        this.progress = { pending: r.pending, unsent: r.unsent };
      }
      sink(r);
      this.#wake();
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.#wake();
    });
  }

  /** Resolves once `done()` holds, re-tested on every report, exit and second; rejects past the deadline. */
  until(done: () => boolean, what: string, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    return new Promise<void>((resolve, reject) => {
      const tick = setInterval(() => test(), 1_000);
      const test = () => {
        if (done()) {
          clearInterval(tick);
          this.#waiters = this.#waiters.filter((w) => w !== test);
          resolve();
        } else if (Date.now() > deadline || this.exited) {
          clearInterval(tick);
          this.#waiters = this.#waiters.filter((w) => w !== test);
          reject(new Error(`${what}: ${this.exited ? 'the host exited on its own' : 'deadline passed'}\n${this.stderr.join('')}`));
        }
      };
      this.#waiters.push(test);
      test();
    });
  }

  /** The fault schedule's wait: `ms`, or less if the host exits first. */
  pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async kill(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await gone;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}

export async function runEmbeddedHostKill(o: EmbeddedOptions): Promise<EmbeddedResult> {
  const started = Date.now();
  const { log } = o;
  const name = EMBEDDED_HOST_KILL.name;
  const random = prng(scenarioSeed(o.seed, name));
  const dir = mkdtempSync(path.join(tmpdir(), 'zl-fx-embedded-'));
  const timeline: Array<{ at: number; what: string }> = [];
  let t0 = Date.now();
  const event = (what: string) => {
    const at = Math.round((Date.now() - t0) / 100) / 10;
    timeline.push({ at, what });
    log(`${name} +${at.toFixed(1)}s ${what}`);
  };

  // The directory as an application's first start leaves it: zeroloss's tables, the business tables, the topic.
  const store = pglite(dir, { schema: SCHEMA });
  try {
    await store.migrate();
    // Several statements: exec, not query (the extended protocol takes one).
    await store.pglite.exec(businessSchemaSql(SCHEMA));
    const transport = tableLog(store);
    await transport.ensureTopic(TOPIC, PARTITIONS);
    await transport.ensureTopic(`${TOPIC}.dlq`, 3);
    await transport.close();
  } catch (e) {
    await store.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  await store.close();

  // At least 12 lives (40 at most): each writes about its share of N before its kill, a few die opening.
  const planned = Math.max(12, Math.min(40, Math.ceil(o.messages / 2_500)));
  const share = o.messages / planned;
  const committed = new Set<string>();
  const rolledBack = new Set<string>();
  const hostErrors: string[] = [];
  const sink = (r: HostReport) => {
    if (r.kind === 'committed') for (const id of r.ids) committed.add(id);
    if (r.kind === 'rolled-back') for (const id of r.ids) rolledBack.add(id);
    if (r.kind === 'error' && hostErrors.length < 20) hostErrors.push(r.message);
  };
  const broken = o.broken ?? '';
  const openTimes: number[] = [];
  let lives = 0;
  let killedWhileOpening = 0;
  let killedCatchingUp = 0;
  let lastKillAt = 0;
  let drained = false;
  let recoveredAt = 0;
  let workloadDoneAt = 0;
  let error: string | undefined;
  log(`${name}: ${o.messages} messages over ${o.keys} keys, about ${planned} lives, directory ${dir}`);
  t0 = Date.now();
  try {
    while (committed.size < o.messages) {
      lives++;
      const life = new Life(lives, dir, o.keys, o.rate, true, broken, sink);
      // Some lives (never the first) die while PGlite reopens the directory and the host starts.
      if (lives > 1 && random() < 0.15) {
        const afterMs = Math.floor(random() * 1_500);
        await life.pause(afterMs);
        if (!life.exited) {
          await life.kill();
          lastKillAt = Date.now();
          killedWhileOpening++;
          event(`life ${lives}: SIGKILL ${afterMs} ms after spawn, ${life.ready ? 'after' : 'before'} it was ready`);
          if (life.ready) openTimes.push(life.openMs);
          continue;
        }
        throw new Error(`life ${lives} exited on its own while opening\n${life.stderr.join('')}`);
      }
      await life.until(() => life.ready, `life ${lives} opening the directory`, OPEN_TIMEOUT_MS);
      openTimes.push(life.openMs);
      // Some die 0.5-4.5 s after they are ready: while the consumer takes the killed life's partitions over
      // (its 2 s session) and works off the backlog that built up meanwhile, its busiest moments.
      if (random() < 0.35) {
        const afterMs = 500 + Math.floor(random() * 4_000);
        await life.pause(afterMs);
        if (life.exited) throw new Error(`life ${lives} exited on its own\n${life.stderr.join('')}`);
        await life.kill();
        lastKillAt = Date.now();
        killedCatchingUp++;
        event(`life ${lives}: SIGKILL ${afterMs} ms after it was ready, ${life.committedHere} commits reported, ${committed.size} in all`);
        continue;
      }
      const target = Math.max(1, Math.min(o.messages - committed.size, Math.round(share * (0.4 + 1.2 * random()))));
      const stalled = () => Date.now() - life.lastMoveAt > o.stallSeconds * 1_000;
      await life.until(
        () => life.committedHere >= target || committed.size >= o.messages || stalled(),
        `life ${lives} writing`,
        Number.MAX_SAFE_INTEGER,
      );
      if (stalled()) throw new Error(`life ${lives}: no commit for ${o.stallSeconds} s\n${life.stderr.join('')}`);
      // Past the report, at a point of the host's write, relay and consume loops the harness cannot see.
      const extraMs = Math.floor(random() * 50);
      await life.pause(extraMs);
      await life.kill();
      lastKillAt = Date.now();
      event(`life ${lives}: SIGKILL after ${life.committedHere} commits reported (+${extraMs} ms), ${committed.size} in all`);
    }
    workloadDoneAt = Date.now();
    event('workload written; last life drains');

    lives++;
    const last = new Life(lives, dir, o.keys, o.rate, false, broken, sink);
    await last.until(() => last.ready, `life ${lives} (drain) opening the directory`, OPEN_TIMEOUT_MS);
    openTimes.push(last.openMs);
    let lastReport = Date.now();
    await last
      .until(
        () => {
          if (Date.now() - lastReport >= 5_000 && last.progress) {
            lastReport = Date.now();
            log(
              `${name}: draining, ${last.progress.pending} committed messages without outcome, ${last.progress.unsent} outbox rows unsent`,
            );
          }
          const p = last.progress;
          if (p?.pending === 0 && p.unsent === 0) return true;
          return Date.now() - last.lastMoveAt > o.stallSeconds * 1_000;
        },
        'draining',
        Math.max(180, o.messages / 100) * 1_000,
      )
      .catch((e: Error) => {
        error ??= e.message;
      });
    recoveredAt = Date.now();
    drained = last.progress?.pending === 0 && last.progress.unsent === 0;
    event(
      drained
        ? 'drained: every committed message has its outcome'
        : `drain gave up: ${last.progress?.pending} committed messages without outcome, ${last.progress?.unsent} outbox rows unsent`,
    );
    if (!last.exited) last.child.send({ kind: 'stop' });
    await last
      .until(() => last.exited, 'stopping the last life', 30_000)
      .catch(async () => {
        event('the last life did not stop within 30 s: SIGKILL');
        await last.kill();
      });
  } catch (e) {
    error = (e as Error).stack ?? String(e);
    log(`${name}: ${error}`);
  }

  // The independent read: the directory opened here with PGlite itself, the suite's own SQL.
  const db = new PGlite(dir);
  let result: Awaited<ReturnType<typeof check>>;
  let pgVersion = '?';
  try {
    pgVersion = (await db.query<{ v: string }>("select 'PGlite, PostgreSQL ' || current_setting('server_version') as v")).rows[0]?.v ?? '?';
    const pool = { query: (sql: string, params?: unknown[]) => db.query(sql, params) } as unknown as pg.Pool;
    result = await check(pool, SCHEMA, await readLog(db), { committed, rolledBack });
  } finally {
    await db.close();
  }
  const figures: Figures = {
    ...result.figures,
    recoverySeconds: lastKillAt === 0 ? 0 : Math.round(Math.max(0, recoveredAt - lastKillAt) / 100) / 10,
  };
  const why = failures(figures, result.details);
  if (!drained && why.length === 0) why.push('did not drain');
  if (error) why.push(`error: ${error.split('\n')[0]}`);
  const pass = why.length === 0;
  if (pass) rmSync(dir, { recursive: true, force: true });
  else log(`${name}: FAILED (${why.join(', ')}); directory kept: ${dir}\nhost errors: ${hostErrors.join('\n')}`);
  const kills = lives - 1;
  return {
    scenario: name,
    transport: 'table-log (embedded PGlite)',
    seed: o.seed,
    messages: o.messages,
    pass,
    failures: why,
    figures,
    details: {
      ...result.details,
      drained,
      unknownCommitOutcome: 0,
      failedTransactions: 0,
      workloadSeconds: Math.round(((workloadDoneAt || Date.now()) - t0) / 100) / 10,
      relayKills: kills,
      consumerKills: kills,
      consumerDeaths: 0,
      relayDeaths: 0,
      idsChecked: 0,
      duplicateIds: 0,
      idsOutOfOrder: 0,
      lives,
      killedWhileOpening,
      killedCatchingUp,
      maxOpenMs: Math.max(0, ...openTimes),
      meanOpenMs: openTimes.length === 0 ? 0 : Math.round(openTimes.reduce((a, b) => a + b, 0) / openTimes.length),
      reportedCommitted: committed.size,
      directory: dir,
      database: pgVersion,
    },
    faults: timeline,
    durationSeconds: Math.round((Date.now() - started) / 100) / 10,
    ...(error ? { error } : {}),
  };
}

/** The topic as the table log holds it, read with the suite's own SQL. */
function readLog(db: PGlite): Promise<TopicRecord[]> {
  return tableLogRecords((sql, params) => db.query(sql, params), SCHEMA, TOPIC);
}
