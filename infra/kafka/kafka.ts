/**
 * Local Apache Kafka (KRaft, combined broker+controller) for zeroloss's tests, run from Maven Central jars
 * with the system Java (17+). No Docker, no Kafka distribution.
 *
 * Library:  import { up, down, killNode, ... } from '../infra/kafka/kafka.ts'
 * CLI:      node infra/kafka/kafka.ts up [--cluster] | down [--cluster|--single] | status | fetch-jars
 *                                      | kill-node N | start-node N | stop-node N | pause-node N | resume-node N
 *
 * Layout (all beside this file, git-ignored):
 *   .libs/                         broker jars (mvn dependency:copy-dependencies of pom.xml)
 *   .work/<mode>.lock              exclusive lock (content: pid of the holder), mode = single | cluster
 *   .work/<mode>/mode              the mode of the node set recorded here
 *   .work/<mode>/cluster-id        the cluster id the storage was formatted with
 *   .work/<mode>/variant           the properties variant the configs were written with (empty: none)
 *   .work/<mode>/<node>.properties the node's config (@DATA@ replaced)
 *   .work/<mode>/<node>.pid        pid of the running JVM
 *   .work/<mode>/<node>.out        the JVM's stdout+stderr (previous run: <node>.out.prev)
 *   .work/<mode>/data/<node>/      the node's log dir (metadata + partitions)
 *
 * Nodes are started detached (own session, stdio to files) so they outlive the process that called up();
 * up() is idempotent and shared between processes: a running, reachable node set is reused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export type Mode = 'single' | 'cluster';

export interface UpOptions {
  /** 'single' (127.0.0.1:9092, default) or 'cluster' (three nodes on 127.0.0.1:10092/11092/12092). */
  mode?: Mode;
  /** Deadline for the whole start-up, default 120 000 ms (env KAFKA_START_TIMEOUT_MS overrides the default). */
  timeoutMs?: number;
  /**
   * Cluster only: also load `<node>.<variant>.properties` (beside this file) over each node's config, later
   * keys winning; e.g. 'proxied' adds the fault suite's proxied client listener. Recorded with the storage: a
   * running cluster of another variant is not reused (up() fails and says to take it down first).
   */
  variant?: string;
}

export interface UpResult {
  mode: Mode;
  /** host:port bootstrap addresses of the PLAINTEXT listeners. */
  brokers: string[];
  /** true if this call formatted and started the node set; false if it reused (or only healed) one. */
  startedHere: boolean;
}

export interface DownOptions {
  /** Which node set to stop; omitted = every node set recorded in the work dir. */
  mode?: Mode;
  /** How long to wait after SIGTERM before SIGKILL, default 30 000 ms. */
  timeoutMs?: number;
}

export interface NodeStatus {
  name: string;
  nodeId: number;
  broker: string;
  pid: number | undefined;
  state: 'running' | 'paused' | 'stopped';
  /** The PLAINTEXT port accepts a TCP connection (a paused JVM's port still does: the kernel accepts). */
  reachable: boolean;
}

export interface ModeStatus {
  mode: Mode;
  workDir: string;
  formatted: boolean;
  clusterId: string | undefined;
  nodes: NodeStatus[];
}

export interface Status {
  libs: { dir: string; present: boolean };
  single: ModeStatus;
  cluster: ModeStatus;
}

interface NodeDef {
  mode: Mode;
  /** File stem: 'single' or 'node1'..'node3'. */
  name: string;
  nodeId: number;
  port: number;
  controllerPort: number;
}

export class KafkaManagerError extends Error {
  override name = 'KafkaManagerError';
}

export const HERE: string = import.meta.dirname;
export const LIBS_DIR: string = path.join(HERE, '.libs');
export const WORK_DIR: string = path.join(HERE, '.work');
const LOG4J2 = path.join(HERE, 'log4j2.properties');
const POM = path.join(HERE, 'pom.xml');

const NODES: Record<Mode, readonly NodeDef[]> = {
  single: [{ mode: 'single', name: 'single', nodeId: 1, port: 9092, controllerPort: 9093 }],
  cluster: [1, 2, 3].map((n) => ({
    mode: 'cluster' as const,
    name: `node${n}`,
    nodeId: n,
    // Below Linux's ephemeral range (32768-60999): on 39092-39095 node 3 sometimes could not bind because a
    // client connection of the busy machine held that port as its local end ("Address already in use").
    port: 9092 + n * 1000,
    controllerPort: 9093 + n * 1000,
  })),
};

/** Bootstrap addresses per mode (fixed ports). */
export const BROKERS: Record<Mode, readonly string[]> = {
  single: NODES.single.map(brokerOf),
  cluster: NODES.cluster.map(brokerOf),
};

const READY_LINE = 'Kafka Server started';
const DEFAULT_START_TIMEOUT_MS = Number(process.env.KAFKA_START_TIMEOUT_MS) || 120_000;
const DEFAULT_STOP_TIMEOUT_MS = 30_000;
const HEAP = ['-Xms256m', '-Xmx512m'];
/** The default KAFKA_JVM_PERFORMANCE_OPTS of bin/kafka-run-class.sh (3.9.1 .. 4.2.x). */
const PERF = [
  '-server',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-XX:+ExplicitGCInvokesConcurrent',
  '-XX:MaxInlineLevel=15',
  '-Djava.awt.headless=true',
];

// ---------------------------------------------------------------------------------------------------------
// small helpers

function log(msg: string): void {
  process.stderr.write(`[kafka] ${msg}\n`);
}

function brokerOf(n: NodeDef): string {
  return `127.0.0.1:${n.port}`;
}

function modeDir(mode: Mode): string {
  return path.join(WORK_DIR, mode);
}

function nodeFile(n: NodeDef, ext: string): string {
  return path.join(modeDir(n.mode), `${n.name}.${ext}`);
}

function javaBin(): string {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

function commonJvmArgs(mode: Mode | undefined): string[] {
  const logsDir = mode ? path.join(modeDir(mode), 'logs') : path.join(WORK_DIR, 'logs');
  return [`-Dlog4j2.configurationFile=${LOG4J2}`, `-Dkafka.logs.dir=${logsDir}`, '-cp', path.join(LIBS_DIR, '*')];
}

/** Node n of a mode: 1..3 in the cluster, 1 for the single node (so fault tests can stop it too). */
function nodeOf(n: number, mode: Mode = 'cluster'): NodeDef {
  const node = NODES[mode].find((d) => d.nodeId === n);
  if (!node)
    throw new KafkaManagerError(
      `no ${mode} node ${String(n)}: ${mode === 'cluster' ? 'the cluster has nodes 1, 2 and 3' : 'the single node is node 1'}`,
    );
  return node;
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

async function tail(file: string, lines: number): Promise<string> {
  const text = await readText(file);
  if (text === undefined) return `(no ${file})`;
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: exists but not ours to signal.
    return isErrno(err, 'EPERM');
  }
  // A zombie (exited, not yet reaped by its parent) still answers kill(0).
  return procState(pid) !== 'Z';
}

/** Single-letter process state from /proc (R, S, T, Z, ...), undefined if unknown. */
function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || undefined;
  } catch {
    return undefined;
  }
}

/** true if pid is alive and (where /proc exists) is the JVM of this node, guarding against pid reuse. */
function isOurNode(pid: number, n: NodeDef): boolean {
  if (!pidAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8');
  } catch {
    return !fs.existsSync('/proc/self'); // no procfs: trust kill(0)
  }
  return cmdline.includes('kafka.Kafka') && cmdline.includes(nodeFile(n, 'properties'));
}

async function recordedPid(n: NodeDef): Promise<number | undefined> {
  const text = await readText(nodeFile(n, 'pid'));
  const pid = Number(text?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid of the node's JVM if it is running (possibly paused), else undefined. */
async function livePid(n: NodeDef): Promise<number | undefined> {
  const pid = await recordedPid(n);
  return pid !== undefined && isOurNode(pid, n) ? pid : undefined;
}

function canConnect(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** true if nothing listens on 127.0.0.1:port (we can bind it). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function describePortOwner(port: number): Promise<string> {
  const out = await run('ss', ['-ltnpH', `sport = :${String(port)}`], { allowFailure: true });
  const line = out.stdout.trim();
  return line ? `\n  ss: ${line}` : `\n  find it with: ss -ltnp 'sport = :${String(port)}'`;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a short-lived command, capturing its output. */
async function run(cmd: string, args: string[], opts: { allowFailure?: boolean; cwd?: string } = {}): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  let code: number | null;
  try {
    [code] = (await once(child, 'close')) as [number | null];
  } catch (err) {
    if (opts.allowFailure) return { code: -1, stdout, stderr };
    throw new KafkaManagerError(`cannot run ${cmd}: ${(err as Error).message}`);
  }
  if (code !== 0 && !opts.allowFailure) {
    throw new KafkaManagerError(`${cmd} ${args.join(' ')} failed (exit ${String(code)}):\n${stdout}${stderr}`);
  }
  return { code, stdout, stderr };
}

/** 'spawn' resolves, 'error' (e.g. ENOENT) rejects with a clear message. */
async function spawned(child: ChildProcess, what: string): Promise<void> {
  try {
    await once(child, 'spawn');
  } catch (err) {
    const hint = isErrno(err, 'ENOENT') ? ' (is Java 17+ installed and on PATH, or JAVA_HOME set?)' : '';
    throw new KafkaManagerError(`cannot start ${what}: ${(err as Error).message}${hint}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// lock: exclusive create of a file holding the holder's pid; a lock whose pid is dead is stale and broken.
// Breaking goes through a second exclusive file so that two waiters cannot both break (and one of them
// then delete the lock the other has just taken).

/** Serialises callers inside this process (the lock file then serialises processes). */
const localLocks = new Map<string, Promise<void>>();

async function withLock<T>(name: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const previous = localLocks.get(name) ?? Promise.resolve();
  let release = (): void => undefined;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const queue = previous.then(() => mine);
  localLocks.set(name, queue);
  await previous;
  try {
    return await withFileLock(name, timeoutMs, fn);
  } finally {
    release();
    if (localLocks.get(name) === queue) localLocks.delete(name);
  }
}

async function withFileLock<T>(name: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await fsp.mkdir(WORK_DIR, { recursive: true });
  const lockPath = path.join(WORK_DIR, `${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const fh = await fsp.open(lockPath, 'wx');
      await fh.writeFile(`${String(process.pid)}\n`);
      await fh.close();
      break;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const content = await readText(lockPath);
    if (content === undefined) continue; // released meanwhile
    const holder = Number(content.trim());
    const validPid = Number.isInteger(holder) && holder > 0;
    // Our own pid cannot be a live holder (localLocks serialises this process): a crashed process's lock
    // whose pid got reused. An unparsable lock (crash between create and write) is stale after 5 s.
    const stale = validPid
      ? holder === process.pid || !pidAlive(holder)
      : Date.now() - ((await fsp.stat(lockPath).catch(() => undefined))?.mtimeMs ?? Date.now()) > 5000;
    if (stale) {
      await breakStaleLock(lockPath, content);
      continue;
    }
    if (Date.now() > deadline) {
      throw new KafkaManagerError(`timed out after ${String(timeoutMs)} ms waiting for lock ${lockPath} (held by pid ${content.trim()})`);
    }
    if (!announced) {
      log(`waiting for another process (pid ${content.trim()}) holding ${path.basename(lockPath)}`);
      announced = true;
    }
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lockPath, { force: true });
  }
}

async function breakStaleLock(lockPath: string, staleContent: string): Promise<void> {
  const breaker = `${lockPath}.break`;
  try {
    const fh = await fsp.open(breaker, 'wx');
    await fh.close();
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
    // Someone else is breaking it; a breaker left behind by a crashed process expires after 10 s.
    const st = await fsp.stat(breaker).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 10_000) await fsp.rm(breaker, { force: true });
    await sleep(100);
    return;
  }
  try {
    // Only remove it if it is still the same stale lock (not one taken meanwhile by a live process).
    if ((await readText(lockPath)) === staleContent) {
      log(`removing stale lock ${path.basename(lockPath)} (holder ${staleContent.trim() || '?'} is gone)`);
      await fsp.rm(lockPath, { force: true });
    }
  } finally {
    await fsp.rm(breaker, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// jars

function hasKafkaJar(dir: string): boolean {
  try {
    return fs.readdirSync(dir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f));
  } catch {
    return false;
  }
}

/**
 * Copy the broker jars (pom.xml) from Maven into infra/kafka/.libs, only if no kafka_2.13-*.jar is there yet.
 * Maven writes into a temporary folder which is then renamed to .libs, so an interrupted fetch never leaves
 * a half-filled .libs behind.
 */
export async function fetchJars(): Promise<void> {
  if (hasKafkaJar(LIBS_DIR)) return;
  await withLock('fetch', 600_000, async () => {
    if (hasKafkaJar(LIBS_DIR)) return;
    const tmp = `${LIBS_DIR}.partial`;
    await fsp.rm(tmp, { recursive: true, force: true });
    const args = ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${tmp}`];
    log(`no Kafka jars in ${LIBS_DIR}; fetching them with Maven:\n  mvn ${args.join(' ')}`);
    const t0 = Date.now();
    const res = await run('mvn', args, { allowFailure: true });
    if (res.code !== 0 || !hasKafkaJar(tmp)) {
      const why = res.code === -1 ? 'could not run mvn (is Maven installed and on PATH?)' : `exit ${String(res.code)}`;
      throw new KafkaManagerError(`fetching Kafka jars failed: ${why}\n${res.stdout}${res.stderr}`.trimEnd());
    }
    await fsp.rm(LIBS_DIR, { recursive: true, force: true });
    await fsp.rename(tmp, LIBS_DIR);
    const count = (await fsp.readdir(LIBS_DIR)).length;
    log(`fetched ${String(count)} jars into ${LIBS_DIR} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
}

// ---------------------------------------------------------------------------------------------------------
// starting and stopping JVMs

async function writeNodeConfig(n: NodeDef, variant: string): Promise<void> {
  let template = await fsp.readFile(path.join(HERE, `${n.name}.properties`), 'utf8');
  if (variant) template += `\n${await fsp.readFile(path.join(HERE, `${n.name}.${variant}.properties`), 'utf8')}`;
  const dataDir = path.join(modeDir(n.mode), 'data');
  await fsp.writeFile(nodeFile(n, 'properties'), template.replaceAll('@DATA@', dataDir));
}

function checkVariant(mode: Mode, variant: string): void {
  if (!variant) return;
  if (mode !== 'cluster' || !/^[a-z][a-z0-9-]*$/.test(variant)) {
    throw new KafkaManagerError(`variant '${variant}': only the cluster has variants, named [a-z][a-z0-9-]*`);
  }
  for (const n of NODES[mode]) {
    if (!fs.existsSync(path.join(HERE, `${n.name}.${variant}.properties`))) {
      throw new KafkaManagerError(`variant '${variant}': no ${n.name}.${variant}.properties in ${HERE}`);
    }
  }
}

async function recordedVariant(mode: Mode): Promise<string> {
  return (await readText(path.join(modeDir(mode), 'variant')))?.trim() ?? '';
}

function variantMismatch(mode: Mode, running: string, asked: string): KafkaManagerError {
  const name = (v: string) => (v ? `variant '${v}'` : 'no variant');
  return new KafkaManagerError(
    `the ${mode} runs with ${name(running)} but ${name(asked)} was asked for: take it down first (node infra/kafka/kafka.ts down --${mode})`,
  );
}

async function storageTool(mode: Mode, args: string[]): Promise<string> {
  const res = await run(javaBin(), ['-Xmx256m', ...commonJvmArgs(mode), 'kafka.tools.StorageTool', ...args], {
    cwd: modeDir(mode),
    allowFailure: true,
  });
  if (res.code !== 0) {
    const why = res.code === -1 ? 'could not run java (is Java 17+ installed?)' : `exit ${String(res.code)}`;
    throw new KafkaManagerError(`kafka.tools.StorageTool ${args.join(' ')} failed: ${why}\n${res.stdout}${res.stderr}`);
  }
  return res.stdout;
}

/** Throw if any port of these nodes is taken (by something that is not one of our running nodes). */
async function assertPortsFree(nodes: readonly NodeDef[]): Promise<void> {
  for (const n of nodes) {
    for (const [port, what] of [
      [n.port, 'PLAINTEXT'],
      [n.controllerPort, 'CONTROLLER'],
    ] as const) {
      if (!(await portFree(port))) {
        throw new KafkaManagerError(
          `cannot start ${n.mode} node ${n.name}: port 127.0.0.1:${String(port)} (${what}) is already in use ` +
            `by a process that is not a Kafka node recorded in ${modeDir(n.mode)}. ` +
            `Stop it (e.g. a Kafka started elsewhere) and retry.${await describePortOwner(port)}`,
        );
      }
    }
  }
}

/** Spawn the node's JVM detached (own session, stdio to <node>.out) and record its pid. */
async function spawnNode(n: NodeDef): Promise<number> {
  const out = nodeFile(n, 'out');
  if (fs.existsSync(out)) await fsp.rename(out, `${out}.prev`);
  const fd = fs.openSync(out, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      javaBin(),
      [...HEAP, ...PERF, ...commonJvmArgs(n.mode), `-Dzeroloss.kafka=${n.mode}/${n.name}`, 'kafka.Kafka', nodeFile(n, 'properties')],
      { cwd: modeDir(n.mode), detached: true, stdio: ['ignore', fd, fd] },
    );
    await spawned(child, `Kafka node ${n.name}`);
  } finally {
    fs.closeSync(fd);
  }
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new KafkaManagerError(`Kafka node ${n.name} did not get a pid`);
  await fsp.writeFile(nodeFile(n, 'pid'), `${String(pid)}\n`);
  return pid;
}

/** Wait until each node logged the readiness line and its PLAINTEXT port accepts a TCP connection. */
async function waitReady(nodes: readonly NodeDef[], deadline: number, timeoutMs: number): Promise<void> {
  const pending = new Set(nodes);
  for (;;) {
    for (const n of [...pending]) {
      const pid = await livePid(n);
      if (pid === undefined) {
        throw new KafkaManagerError(
          `Kafka node ${n.name} exited during start-up; last 40 lines of ${nodeFile(n, 'out')}:\n` + (await tail(nodeFile(n, 'out'), 40)),
        );
      }
      const out = (await readText(nodeFile(n, 'out'))) ?? '';
      if (out.includes(READY_LINE) && (await canConnect(n.port))) pending.delete(n);
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      const tails = await Promise.all(
        [...pending].map(async (n) => `--- last 40 lines of ${nodeFile(n, 'out')}:\n${await tail(nodeFile(n, 'out'), 40)}`),
      );
      throw new KafkaManagerError(
        `timed out after ${String(timeoutMs / 1000)} s waiting for Kafka node(s) ` +
          `${[...pending].map((n) => n.name).join(', ')} to start ('${READY_LINE}' + TCP port)\n${tails.join('\n')}`,
      );
    }
    await sleep(200);
  }
}

async function waitGone(pid: number, n: NodeDef, deadline: number): Promise<boolean> {
  while (isOurNode(pid, n)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** SIGTERM (after SIGCONT, in case it is paused), wait until deadline, then SIGKILL. Removes the pid file. */
async function terminate(nodes: readonly NodeDef[], timeoutMs: number): Promise<void> {
  const running: Array<[NodeDef, number]> = [];
  for (const n of nodes) {
    const pid = await livePid(n);
    if (pid !== undefined) running.push([n, pid]);
  }
  for (const [n, pid] of running) {
    log(`stopping ${n.mode} node ${n.name} (pid ${String(pid)})`);
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
  }
  const deadline = Date.now() + timeoutMs;
  await Promise.all(
    running.map(async ([n, pid]) => {
      if (!(await waitGone(pid, n, deadline))) {
        log(`${n.name} (pid ${String(pid)}) still running ${String(timeoutMs / 1000)} s after SIGTERM: SIGKILL`);
        signal(pid, 'SIGKILL');
        await waitGone(pid, n, Date.now() + 10_000);
      }
    }),
  );
  for (const n of nodes) await fsp.rm(nodeFile(n, 'pid'), { force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if (!isErrno(err, 'ESRCH')) throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// public API

/**
 * Make sure a node set of the given mode runs and is reachable; start it (fresh storage) if not.
 * Idempotent and safe to call from several processes at once (a lock serialises them).
 * If part of a cluster is running (e.g. a test killed a node), the missing nodes are restarted on their
 * existing storage and startedHere is false.
 */
export async function up(opts: UpOptions = {}): Promise<UpResult> {
  const mode: Mode = opts.mode ?? 'single';
  if (mode !== 'single' && mode !== 'cluster') throw new KafkaManagerError(`unknown mode '${String(mode)}'`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const nodes = NODES[mode];
  const brokers = nodes.map(brokerOf);
  const variant = opts.variant ?? '';
  checkVariant(mode, variant);

  // Fast path without the lock: everything recorded is alive and reachable.
  if (await allReachable(mode)) {
    const running = await recordedVariant(mode);
    if (running !== variant) throw variantMismatch(mode, running, variant);
    return { mode, brokers, startedHere: false };
  }

  await fetchJars();
  return withLock(mode, timeoutMs + 30_000, async () => {
    const recordedMode = (await readText(path.join(modeDir(mode), 'mode')))?.trim();
    const alive: NodeDef[] = [];
    if (recordedMode === mode) {
      for (const n of nodes) if ((await livePid(n)) !== undefined) alive.push(n);
    }

    if (alive.length > 0) {
      const running = await recordedVariant(mode);
      if (running !== variant) throw variantMismatch(mode, running, variant);
      // Running (maybe still starting, if its starter died) or partially running: reuse and heal.
      const missing = nodes.filter((n) => !alive.includes(n));
      if (missing.length > 0) {
        log(`${mode}: restarting stopped node(s) ${missing.map((n) => n.name).join(', ')} on existing storage`);
        await assertPortsFree(missing);
        for (const n of missing) await spawnNode(n);
      }
      await waitReady(nodes, deadline, timeoutMs);
      return { mode, brokers, startedHere: false };
    }

    await assertPortsFree(nodes);
    const t0 = Date.now();
    const dir = modeDir(mode);
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(path.join(dir, 'data'), { recursive: true });
    const clusterId = (await storageTool(mode, ['random-uuid'])).trim().split('\n').pop()?.trim() ?? '';
    if (!/^[A-Za-z0-9_-]{22}$/.test(clusterId)) {
      throw new KafkaManagerError(`kafka.tools.StorageTool random-uuid printed an unexpected id '${clusterId}'`);
    }
    await fsp.writeFile(path.join(dir, 'cluster-id'), `${clusterId}\n`);
    await Promise.all(
      nodes.map(async (n) => {
        await writeNodeConfig(n, variant);
        const out = await storageTool(mode, ['format', '-t', clusterId, '-c', nodeFile(n, 'properties')]);
        await fsp.writeFile(nodeFile(n, 'format.out'), out);
      }),
    );
    await fsp.writeFile(path.join(dir, 'variant'), `${variant}\n`);
    await fsp.writeFile(path.join(dir, 'mode'), `${mode}\n`);
    const tFormat = Date.now();
    log(`${mode}: formatted storage (cluster id ${clusterId}) in ${((tFormat - t0) / 1000).toFixed(1)} s; starting`);
    try {
      for (const n of nodes) await spawnNode(n);
      await waitReady(nodes, deadline, timeoutMs);
    } catch (err) {
      await terminate(nodes, 10_000).catch(() => undefined);
      throw err;
    }
    const now = Date.now();
    log(`${mode} up in ${((now - tFormat) / 1000).toFixed(1)} s (${((now - t0) / 1000).toFixed(1)} s with format): ` + brokers.join(','));
    return { mode, brokers, startedHere: true };
  });
}

async function allReachable(mode: Mode): Promise<boolean> {
  if ((await readText(path.join(modeDir(mode), 'mode')))?.trim() !== mode) return false;
  for (const n of NODES[mode]) {
    if ((await livePid(n)) === undefined || !(await canConnect(n.port))) return false;
  }
  return true;
}

/** Stop the node set of mode (or every recorded one): SIGTERM, wait, SIGKILL; pid files are removed. */
export async function down(opts: DownOptions = {}): Promise<void> {
  const modes: Mode[] = opts.mode ? [opts.mode] : ['single', 'cluster'];
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  for (const mode of modes) {
    if (!fs.existsSync(modeDir(mode))) continue;
    await withLock(mode, DEFAULT_START_TIMEOUT_MS + 30_000, async () => {
      const t0 = Date.now();
      const any = (await Promise.all(NODES[mode].map(livePid))).some((p) => p !== undefined);
      await terminate(NODES[mode], timeoutMs);
      if (any) log(`${mode} down in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });
  }
}

/** SIGKILL cluster node n (1..3) and wait until it is gone. */
export async function killNode(n: number, mode: Mode = 'cluster'): Promise<void> {
  const node = nodeOf(n, mode);
  const pid = await livePid(node);
  if (pid === undefined) throw new KafkaManagerError(`cluster node ${String(n)} is not running`);
  log(`SIGKILL ${mode} node ${node.name} (pid ${String(pid)})`);
  signal(pid, 'SIGKILL');
  await waitGone(pid, node, Date.now() + 10_000);
  await fsp.rm(nodeFile(node, 'pid'), { force: true });
}

/** SIGTERM cluster node n (controlled shutdown), wait (deadline, then SIGKILL). */
export async function stopNode(n: number, opts: { timeoutMs?: number; mode?: Mode } = {}): Promise<void> {
  const mode = opts.mode ?? 'cluster';
  const node = nodeOf(n, mode);
  if ((await livePid(node)) === undefined) throw new KafkaManagerError(`cluster node ${String(n)} is not running`);
  await withLock(mode, DEFAULT_START_TIMEOUT_MS + 30_000, () => terminate([node], opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS));
}

/** (Re)start cluster node n on its existing storage and wait until it is ready. No-op if it already runs. */
export async function startNode(n: number, opts: { timeoutMs?: number; mode?: Mode } = {}): Promise<void> {
  const mode = opts.mode ?? 'cluster';
  const node = nodeOf(n, mode);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  await withLock(mode, timeoutMs + 30_000, async () => {
    if ((await readText(path.join(modeDir(mode), 'mode')))?.trim() !== mode) {
      throw new KafkaManagerError(
        `no formatted ${mode} storage in ${modeDir(mode)}: run 'up${mode === 'cluster' ? ' --cluster' : ''}' first`,
      );
    }
    if ((await livePid(node)) === undefined) {
      await assertPortsFree([node]);
      const t0 = Date.now();
      const pid = await spawnNode(node);
      log(`starting ${mode} node ${node.name} (pid ${String(pid)}) on existing storage`);
      await waitReady([node], deadline, timeoutMs);
      log(`${mode} node ${node.name} up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } else {
      await waitReady([node], deadline, timeoutMs);
    }
  });
}

/** SIGSTOP cluster node n (simulates a hung broker: connections stay open, nothing answers). */
export async function pauseNode(n: number, mode: Mode = 'cluster'): Promise<void> {
  const node = nodeOf(n, mode);
  const pid = await livePid(node);
  if (pid === undefined) throw new KafkaManagerError(`cluster node ${String(n)} is not running`);
  signal(pid, 'SIGSTOP');
}

/** SIGCONT cluster node n. */
export async function resumeNode(n: number, mode: Mode = 'cluster'): Promise<void> {
  const node = nodeOf(n, mode);
  const pid = await livePid(node);
  if (pid === undefined) throw new KafkaManagerError(`cluster node ${String(n)} is not running`);
  signal(pid, 'SIGCONT');
}

/** pid of cluster node n's JVM if it is running (or paused), else undefined. */
export async function nodePid(n: number): Promise<number | undefined> {
  return livePid(nodeOf(n));
}

export async function status(): Promise<Status> {
  const modeStatus = async (mode: Mode): Promise<ModeStatus> => {
    const dir = modeDir(mode);
    const formatted = (await readText(path.join(dir, 'mode')))?.trim() === mode;
    const nodes = await Promise.all(
      NODES[mode].map(async (n): Promise<NodeStatus> => {
        const pid = await livePid(n);
        const state = pid === undefined ? 'stopped' : procState(pid) === 'T' ? 'paused' : 'running';
        return {
          name: n.name,
          nodeId: n.nodeId,
          broker: brokerOf(n),
          pid,
          state,
          reachable: pid !== undefined && (await canConnect(n.port, 500)),
        };
      }),
    );
    return { mode, workDir: dir, formatted, clusterId: (await readText(path.join(dir, 'cluster-id')))?.trim(), nodes };
  };
  return {
    libs: { dir: LIBS_DIR, present: hasKafkaJar(LIBS_DIR) },
    single: await modeStatus('single'),
    cluster: await modeStatus('cluster'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage: node infra/kafka/kafka.ts <command>
  up [--cluster]              start (or reuse) the single node 127.0.0.1:9092, or the 3-node cluster
                              127.0.0.1:10092,11092,12092; prints the bootstrap brokers on stdout
  down [--cluster|--single]   stop that node set (default: everything)
  status                      show what runs
  kill-node N                 SIGKILL cluster node N (1..3)
  start-node N                restart cluster node N on its existing storage, wait until ready
  stop-node N                 SIGTERM cluster node N, wait until it has exited
  pause-node N | resume-node N  SIGSTOP / SIGCONT cluster node N
  fetch-jars                  copy the broker jars from Maven into infra/kafka/.libs (up does this itself)
env: KAFKA_START_TIMEOUT_MS (default 120000), JAVA_HOME`;

function printStatus(s: Status): void {
  const lines = [`jars: ${s.libs.present ? s.libs.dir : `missing (${s.libs.dir})`}`];
  for (const m of [s.single, s.cluster]) {
    lines.push(`${m.mode}: ${m.formatted ? `formatted, cluster id ${m.clusterId ?? '?'}` : 'not set up'} (${m.workDir})`);
    if (!m.formatted) continue;
    for (const n of m.nodes) {
      const pid = n.pid === undefined ? '' : ` pid ${String(n.pid)}`;
      const reach = n.state === 'stopped' ? '' : n.reachable ? ', port open' : ', port NOT open';
      lines.push(`  ${n.name.padEnd(6)} id ${String(n.nodeId)} ${n.broker.padEnd(15)} ${n.state}${pid}${reach}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const flags = new Set(rest.filter((a) => a.startsWith('-')));
  const positional = rest.filter((a) => !a.startsWith('-'));
  const allowed = (...ok: string[]): void => {
    for (const f of flags) if (!ok.includes(f)) throw new KafkaManagerError(`unknown option ${f} for ${String(cmd)}\n${USAGE}`);
  };
  const nodeArg = (): number => {
    allowed();
    const n = Number(positional[0]);
    if (positional.length !== 1 || !Number.isInteger(n)) throw new KafkaManagerError(`${String(cmd)} needs a node number (1..3)`);
    return n;
  };
  switch (cmd) {
    case 'up': {
      allowed('--cluster', '--single');
      if (flags.has('--cluster') && flags.has('--single')) throw new KafkaManagerError('up: choose --cluster or --single');
      const t0 = Date.now();
      const res = await up({ mode: flags.has('--cluster') ? 'cluster' : 'single' });
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      log(`${res.mode} ${res.startedHere ? `started in ${secs} s` : 'already running'}`);
      process.stdout.write(`${res.brokers.join(',')}\n`);
      return 0;
    }
    case 'down': {
      allowed('--cluster', '--single');
      if (flags.has('--cluster') && flags.has('--single')) {
        await down();
      } else {
        await down(flags.has('--cluster') ? { mode: 'cluster' } : flags.has('--single') ? { mode: 'single' } : {});
      }
      return 0;
    }
    case 'status':
      allowed();
      printStatus(await status());
      return 0;
    case 'fetch-jars':
      allowed();
      await fetchJars();
      log(`jars in ${LIBS_DIR}`);
      return 0;
    case 'kill-node':
      await killNode(nodeArg());
      return 0;
    case 'start-node':
      await startNode(nodeArg());
      return 0;
    case 'stop-node':
      await stopNode(nodeArg());
      return 0;
    case 'pause-node':
      await pauseNode(nodeArg());
      return 0;
    case 'resume-node':
      await resumeNode(nodeArg());
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`kafka: unknown command '${cmd}'\n${USAGE}\n`);
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`kafka: ${err instanceof KafkaManagerError ? err.message : String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}
