/**
 * A Kafka Connect standalone worker carrying Debezium's PostgreSQL connector and outbox EventRouter, run
 * from Maven Central jars with the system Java (17+), for bench/peer-debezium.ts. No Docker, no Connect or
 * Debezium distribution: pom.xml names the jars, `mvn dependency:copy-dependencies` fetches them on first use.
 *
 * Layout (beside this file, git-ignored):
 *   .libs/               Connect runtime 4.1.1 (the broker's version) + Debezium 3.6.1.Final
 *   .work/<port>/        one worker: worker.properties (from worker.properties here), connect.offsets, connect.out
 *
 * The worker is a child of the calling process (not detached): a bench that dies takes it along, and
 * `stop()` ends it by its pid.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const HERE: string = import.meta.dirname;
export const LIBS_DIR: string = path.join(HERE, '.libs');
export const WORK_DIR: string = path.join(HERE, '.work');
const POM = path.join(HERE, 'pom.xml');

/** The heap connect-standalone.sh gives the worker (KAFKA_HEAP_OPTS default) and Kafka's default JVM flags. */
const JVM = [
  '-Xms256m',
  '-Xmx2g',
  '-server',
  '-XX:+UseG1GC',
  '-XX:MaxGCPauseMillis=20',
  '-XX:InitiatingHeapOccupancyPercent=35',
  '-Djava.awt.headless=true',
];

export class ConnectError extends Error {
  override name = 'ConnectError';
}

function hasJars(dir: string): boolean {
  try {
    const names = fs.readdirSync(dir);
    return names.some((n) => n.startsWith('debezium-connector-postgres-')) && names.some((n) => n.startsWith('connect-runtime-'));
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code: code ?? -1, out };
  } catch (error) {
    return { code: -1, out: `${out}${(error as Error).message}` };
  }
}

/** Copies the jars of pom.xml into .libs unless they are there; through a temporary folder, so never half-filled. */
export async function fetchJars(log: (line: string) => void = () => {}): Promise<void> {
  if (hasJars(LIBS_DIR)) return;
  const tmp = `${LIBS_DIR}.partial`;
  await fsp.rm(tmp, { recursive: true, force: true });
  const args = ['-B', '-q', '-f', POM, 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${tmp}`];
  log(`[debezium] fetching Connect and Debezium jars: mvn ${args.join(' ')}`);
  const res = await run('mvn', args);
  if (res.code !== 0 || !hasJars(tmp))
    throw new ConnectError(`fetching the Debezium jars failed (exit ${res.code}):\n${res.out}`.trimEnd());
  await fsp.rm(LIBS_DIR, { recursive: true, force: true });
  await fsp.rename(tmp, LIBS_DIR);
}

export interface ConnectWorker {
  pid: number;
  /** The REST endpoint, http://127.0.0.1:<port>. */
  url: string;
  /** When the JVM was spawned (Date.now()), for the bench's warm-up. */
  startedAt: number;
  createConnector(name: string, config: Record<string, string>): Promise<void>;
  deleteConnector(name: string): Promise<void>;
  /** The connector's and its tasks' states, e.g. ['RUNNING', 'RUNNING']; a failed task's trace in `trace`. */
  connectorState(name: string): Promise<{ states: string[]; trace?: string }>;
  stop(): Promise<void>;
}

async function rest(url: string, method: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, text: await res.text() };
}

/** Starts a standalone worker on `port` against `brokers` and waits until its REST API answers. */
export async function startConnect(options: { brokers: string[]; port: number; timeoutMs?: number }): Promise<ConnectWorker> {
  const dir = path.join(WORK_DIR, String(options.port));
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const template = await fsp.readFile(path.join(HERE, 'worker.properties'), 'utf8');
  const properties = path.join(dir, 'worker.properties');
  await fsp.writeFile(
    properties,
    template.replaceAll('@BOOTSTRAP@', options.brokers.join(',')).replaceAll('@WORK@', dir).replaceAll('@PORT@', String(options.port)),
  );
  const outFile = path.join(dir, 'connect.out');
  const fd = fs.openSync(outFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java',
      [
        ...JVM,
        `-Dlog4j2.configurationFile=${path.join(HERE, 'log4j2.properties')}`,
        '-cp',
        path.join(LIBS_DIR, '*'),
        'org.apache.kafka.connect.cli.ConnectStandalone',
        properties,
      ],
      { cwd: dir, stdio: ['ignore', fd, fd] },
    );
    await once(child, 'spawn');
  } finally {
    fs.closeSync(fd);
  }
  const pid = child.pid as number;
  const startedAt = Date.now();
  const url = `http://127.0.0.1:${options.port}`;
  let exited = false;
  child.once('exit', () => (exited = true));
  // A bench that throws past its finally (or is interrupted) must not leave the JVM behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const tail = async () => (await fsp.readFile(outFile, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-30).join('\n');

  const stop = async () => {
    process.off('exit', killOnExit);
    if (exited) return;
    child.kill('SIGTERM');
    const gone = once(child, 'exit');
    const deadline = sleep(30_000).then(() => 'timeout' as const);
    if ((await Promise.race([gone, deadline])) === 'timeout') {
      child.kill('SIGKILL');
      await gone;
    }
  };

  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    if (exited) throw new ConnectError(`the Connect worker exited during start-up; ${outFile}:\n${await tail()}`);
    const ok = await rest(`${url}/connectors`, 'GET').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new ConnectError(`the Connect worker did not answer on ${url} in time; ${outFile}:\n${await tail()}`);
    }
    await sleep(250);
  }

  return {
    pid,
    url,
    startedAt,
    async createConnector(name, config) {
      const res = await rest(`${url}/connectors`, 'POST', { name, config });
      if (res.status !== 201) throw new ConnectError(`creating connector ${name}: HTTP ${res.status} ${res.text}`);
    },
    async deleteConnector(name) {
      const res = await rest(`${url}/connectors/${encodeURIComponent(name)}`, 'DELETE');
      if (res.status !== 204 && res.status !== 404) throw new ConnectError(`deleting connector ${name}: HTTP ${res.status} ${res.text}`);
    },
    async connectorState(name) {
      const res = await rest(`${url}/connectors/${encodeURIComponent(name)}/status`, 'GET');
      if (res.status !== 200) return { states: [] };
      const body = JSON.parse(res.text) as { connector: { state: string }; tasks: Array<{ state: string; trace?: string }> };
      const trace = body.tasks.find((t) => t.trace)?.trace;
      return { states: [body.connector.state, ...body.tasks.map((t) => t.state)], ...(trace ? { trace } : {}) };
    },
    stop,
  };
}
