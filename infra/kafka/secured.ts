/**
 * The secured test broker: one KRaft node with SASL_SSL (127.0.0.1:9192) and SASL_PLAINTEXT (127.0.0.1:9193)
 * listeners, beside the plain node and the cluster of kafka.ts (whose broker jars it uses). PLAIN, SCRAM-SHA-256,
 * SCRAM-SHA-512 and OAUTHBEARER (unsecured tokens) on both listeners; see secured.properties.
 *
 * Library:  import { upSecured, downSecured, SECURED } from '../infra/kafka/secured.ts'
 * CLI:      node infra/kafka/secured.ts up | down | status
 *
 * Layout (git-ignored, under .work/secured/):
 *   certs/     test CA, broker keystore, truststore, a client certificate, and a second CA the broker does not
 *              trust. Made once with openssl and keytool, reused by later starts.
 *   data/      the node's storage, formatted once (SCRAM users are added at format time) and reused.
 *   secured.properties, secured.pid, secured.out, lock
 *
 * Every secret here is a fixed test value: this broker exists for tests on 127.0.0.1 only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchJars, HERE, KafkaManagerError, LIBS_DIR, WORK_DIR } from './kafka.ts';

const DIR = path.join(WORK_DIR, 'secured');
const CERTS = path.join(DIR, 'certs');
const DATA = path.join(DIR, 'data');
const CONFIG = path.join(DIR, 'secured.properties');
const PID_FILE = path.join(DIR, 'secured.pid');
const OUT_FILE = path.join(DIR, 'secured.out');
const LOCK = path.join(WORK_DIR, 'secured.lock');
const STOREPASS = 'zl-test-storepass';
const PORTS = { saslSsl: 9192, saslPlaintext: 9193, controller: 9194 } as const;
const READY_LINE = 'Kafka Server started';
const START_TIMEOUT_MS = Number(process.env.KAFKA_START_TIMEOUT_MS) || 120_000;

/** What a test needs to reach the secured broker: addresses, users and certificate files (PEM). */
export const SECURED = {
  saslSsl: [`127.0.0.1:${PORTS.saslSsl}`],
  saslPlaintext: [`127.0.0.1:${PORTS.saslPlaintext}`],
  users: {
    plain: { username: 'plain-user', password: 'zl-plain-Pw-7c41e9' },
    scram256: { username: 'scram256-user', password: 'zl-scram256-Pw-52b8d0' },
    scram512: { username: 'scram512-user', password: 'zl-scram512-Pw-a3f6c2' },
  },
  certs: {
    /** The CA that signed the broker's certificate (and the client certificate). */
    ca: path.join(CERTS, 'ca.pem'),
    /** A CA that signed nothing the broker uses: trusting only it must fail the handshake. */
    otherCa: path.join(CERTS, 'other-ca.pem'),
    clientCert: path.join(CERTS, 'client.pem'),
    clientKey: path.join(CERTS, 'client.key'),
  },
} as const;

function log(msg: string): void {
  process.stderr.write(`[kafka-secured] ${msg}\n`);
}

async function run(cmd: string, args: string[], cwd = DIR): Promise<string> {
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  let code: number | null;
  try {
    [code] = (await once(child, 'close')) as [number | null];
  } catch (err) {
    throw new KafkaManagerError(`cannot run ${cmd}: ${(err as Error).message}`);
  }
  if (code !== 0) throw new KafkaManagerError(`${cmd} ${args.join(' ')} failed (exit ${String(code)}):\n${out}`);
  return out;
}

function javaBin(name = 'java'): string {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', name) : name;
}

function jvmArgs(): string[] {
  return [
    `-Dlog4j2.configurationFile=${path.join(HERE, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${path.join(DIR, 'logs')}`,
    '-cp',
    path.join(LIBS_DIR, '*'),
  ];
}

// ---------------------------------------------------------------------------------------------------------
// certificates

/** Makes the test PKI once (EC P-256: key generation is instant); later starts reuse it. */
async function ensureCerts(): Promise<void> {
  if (fs.existsSync(path.join(CERTS, 'done'))) return;
  const tmp = `${CERTS}.partial`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  const ossl = (...args: string[]) => run('openssl', args, tmp);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const [name, cn] of [
    ['ca', 'zeroloss test CA'],
    ['other-ca', 'zeroloss untrusted CA'],
  ]) {
    await ossl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '3650', '-subj', `/CN=${cn}`);
  }
  await fsp.writeFile(path.join(tmp, 'broker.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await fsp.writeFile(path.join(tmp, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const name of ['broker', 'client']) {
    await ossl(
      'req',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name === 'broker' ? 'localhost' : 'zeroloss-client'}`,
    );
    await ossl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '3650',
      '-out',
      `${name}.pem`,
      '-extfile',
      `${name}.ext`,
    );
  }
  const pass = `pass:${STOREPASS}`;
  await ossl(
    'pkcs12',
    '-export',
    '-in',
    'broker.pem',
    '-inkey',
    'broker.key',
    '-certfile',
    'ca.pem',
    '-name',
    'broker',
    '-out',
    'broker.p12',
    '-passout',
    pass,
  );
  // keytool, not openssl: Java trusts a PKCS12 certificate entry only with its own trust attribute.
  await run(
    javaBin('keytool'),
    [
      '-importcert',
      '-noprompt',
      '-alias',
      'ca',
      '-file',
      'ca.pem',
      '-keystore',
      'truststore.p12',
      '-storetype',
      'PKCS12',
      '-storepass',
      STOREPASS,
    ],
    tmp,
  );
  await fsp.writeFile(path.join(tmp, 'done'), '');
  await fsp.rm(CERTS, { recursive: true, force: true });
  await fsp.rename(tmp, CERTS);
  log(`made test certificates in ${CERTS}`);
}

// ---------------------------------------------------------------------------------------------------------
// process

function procCmdline(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pid of our broker's JVM if it runs (guarding against pid reuse by checking its command line). */
async function livePid(): Promise<number | undefined> {
  const pid = Number((await fsp.readFile(PID_FILE, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cmdline = procCmdline(pid);
  if (!cmdline?.includes('kafka.Kafka') || !cmdline.includes(CONFIG)) return undefined;
  const stat = fs.readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z' ? undefined : pid;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** One starter or stopper at a time across processes; a lock whose holder died is taken over. */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  await fsp.mkdir(WORK_DIR, { recursive: true });
  const deadline = Date.now() + START_TIMEOUT_MS + 30_000;
  for (;;) {
    try {
      await fsp.writeFile(LOCK, `${String(process.pid)}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await fsp.readFile(LOCK, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && !fs.existsSync(`/proc/${String(holder)}`)) {
        await fsp.rm(LOCK, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new KafkaManagerError(`timed out waiting for ${LOCK} (held by pid ${String(holder)})`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(LOCK, { force: true });
  }
}

async function writeConfig(): Promise<void> {
  const template = await fsp.readFile(path.join(HERE, 'secured.properties'), 'utf8');
  await fsp.writeFile(
    CONFIG,
    template
      .replaceAll('@DATA@', DATA)
      .replaceAll('@CERTS@', CERTS)
      .replaceAll('@STOREPASS@', STOREPASS)
      .replaceAll('@PLAIN_PASSWORD@', SECURED.users.plain.password),
  );
}

/** Formats the storage once, adding the SCRAM users to the metadata log it starts with. */
async function ensureFormatted(): Promise<void> {
  if (fs.existsSync(path.join(DATA, 'secured', 'meta.properties'))) return;
  await fsp.rm(DATA, { recursive: true, force: true });
  const storage = (...args: string[]) => run(javaBin(), ['-Xmx256m', ...jvmArgs(), 'kafka.tools.StorageTool', ...args]);
  const clusterId = (await storage('random-uuid')).trim().split('\n').pop()?.trim() ?? '';
  const { scram256, scram512 } = SECURED.users;
  await storage(
    'format',
    '-t',
    clusterId,
    '-c',
    CONFIG,
    '--add-scram',
    `SCRAM-SHA-256=[name=${scram256.username},password=${scram256.password}]`,
    '--add-scram',
    `SCRAM-SHA-512=[name=${scram512.username},password=${scram512.password}]`,
  );
  log(`formatted ${DATA} (cluster id ${clusterId})`);
}

async function spawnBroker(): Promise<number> {
  if (fs.existsSync(OUT_FILE)) await fsp.rename(OUT_FILE, `${OUT_FILE}.prev`);
  const fd = fs.openSync(OUT_FILE, 'a');
  let child: ChildProcess;
  try {
    child = spawn(javaBin(), ['-Xms256m', '-Xmx512m', '-XX:+UseG1GC', '-Djava.awt.headless=true', ...jvmArgs(), 'kafka.Kafka', CONFIG], {
      cwd: DIR,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    await once(child, 'spawn');
  } finally {
    fs.closeSync(fd);
  }
  child.unref();
  if (child.pid === undefined) throw new KafkaManagerError('the secured broker got no pid');
  await fsp.writeFile(PID_FILE, `${String(child.pid)}\n`);
  return child.pid;
}

async function waitReady(deadline: number): Promise<void> {
  for (;;) {
    if ((await livePid()) === undefined) {
      const out = await fsp.readFile(OUT_FILE, 'utf8').catch(() => '');
      throw new KafkaManagerError(
        `the secured broker exited during start-up; last lines of ${OUT_FILE}:\n${out.split('\n').slice(-40).join('\n')}`,
      );
    }
    const out = await fsp.readFile(OUT_FILE, 'utf8').catch(() => '');
    if (out.includes(READY_LINE) && (await canConnect(PORTS.saslPlaintext)) && (await canConnect(PORTS.saslSsl))) return;
    if (Date.now() > deadline)
      throw new KafkaManagerError(`the secured broker did not start within ${String(START_TIMEOUT_MS)} ms (see ${OUT_FILE})`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------------------
// public API

/**
 * Start the secured broker, or reuse a running one. Idempotent and shared between processes. Certificates
 * and storage are kept between runs, so a restart costs only the JVM's start.
 */
export async function upSecured(): Promise<{ startedHere: boolean }> {
  if ((await livePid()) !== undefined && (await canConnect(PORTS.saslPlaintext))) return { startedHere: false };
  await fetchJars();
  return withLock(async () => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    if ((await livePid()) !== undefined) {
      await waitReady(deadline);
      return { startedHere: false };
    }
    for (const port of Object.values(PORTS)) {
      if (await canConnect(port))
        throw new KafkaManagerError(`cannot start the secured broker: 127.0.0.1:${String(port)} is taken by another process`);
    }
    const t0 = Date.now();
    await fsp.mkdir(DIR, { recursive: true });
    await ensureCerts();
    await writeConfig();
    await ensureFormatted();
    const pid = await spawnBroker();
    try {
      await waitReady(deadline);
    } catch (err) {
      process.kill(pid, 'SIGKILL');
      throw err;
    }
    log(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s: SASL_SSL ${SECURED.saslSsl[0]}, SASL_PLAINTEXT ${SECURED.saslPlaintext[0]}`);
    return { startedHere: true };
  });
}

/** Stop the secured broker (SIGTERM, then SIGKILL after 30 s). Storage and certificates stay for the next start. */
export async function downSecured(): Promise<void> {
  await withLock(async () => {
    const pid = await livePid();
    if (pid === undefined) return;
    log(`stopping (pid ${String(pid)})`);
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    let killed = false;
    while ((await livePid()) !== undefined) {
      if (!killed && Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        killed = true;
      }
      await sleep(100);
    }
    await fsp.rm(PID_FILE, { force: true });
  });
}

export async function securedRunning(): Promise<boolean> {
  return (await livePid()) !== undefined;
}

if (import.meta.main) {
  const cmd = process.argv[2];
  const actions: Record<string, () => Promise<unknown>> = {
    up: async () =>
      process.stdout.write(
        `${SECURED.saslSsl[0]} ${SECURED.saslPlaintext[0]} (${(await upSecured()).startedHere ? 'started' : 'already running'})\n`,
      ),
    down: downSecured,
    status: async () => process.stdout.write(`${(await securedRunning()) ? 'running' : 'stopped'}\n`),
  };
  const action = cmd === undefined ? undefined : actions[cmd];
  if (!action) {
    process.stderr.write('usage: node infra/kafka/secured.ts up | down | status\n');
    process.exitCode = 2;
  } else {
    action().catch((err: unknown) => {
      process.stderr.write(`kafka-secured: ${err instanceof KafkaManagerError ? err.message : String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    });
  }
}
