import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, chownSync, chmodSync, writeFileSync } from 'node:fs';
import { portOpen } from './port-open.ts';
import { createTestCa, signTestCertificate, type TestCa } from './test-certificates.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL cluster on its own port, for tests that restart or kill the database. The
 * machine's shared server on 5432 is never touched, so other test runs are not disturbed.
 *
 * Postgres refuses to run as root; when we are root the server runs as the `postgres` user.
 *
 * With `tls: true` the server runs with `ssl=on` and a certificate (CN and SAN 127.0.0.1 and localhost)
 * signed by a CA made at start; the CA is also the one client certificates are checked against, and the
 * user TLS_CERT_USER logs in only over TLS with such a certificate (`cert` authentication). Every other
 * user stays `trust`, over TLS or not, so a test can compare the two on one server.
 */
const run = promisify(execFile);

export interface PostgresInstance {
  url: string;
  port: number;
  dataDir: string;
  /** 'immediate' is a crash restart (no checkpoint), like a power loss; 'fast' a clean one. */
  restart(mode?: 'immediate' | 'fast'): Promise<void>;
  stop(mode?: 'immediate' | 'fast'): Promise<void>;
  start(): Promise<void>;
  /** Stops the server at once and deletes its data directory, log, TLS files and owner record. */
  discard(): Promise<void>;
  /** Present when started with `tls: true`; the files live in `dir`, beside the data directory. */
  tls?: PostgresTls;
}

export interface PostgresTls {
  dir: string;
  /** The CA that signed the server certificate: pass it as `sslrootcert` to verify the server. */
  ca: TestCa;
  /** The only user that must log in with a client certificate (CN = user name) signed by `ca`. */
  certUser: string;
}

export const TLS_CERT_USER = 'zeroloss_cert';

/** The newest installed PostgreSQL's bin directory (server binaries and tools such as pg_waldump). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'pg_ctl')));
  if (!dir) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)');
  return dir;
}

const asRoot = process.getuid?.() === 0;

/** uid and gid of the user the server runs as: `postgres` when we are root, else ourselves. */
function serverOwner(): { uid: number; gid: number } | undefined {
  if (!asRoot) return undefined;
  const uid = spawnSync('id', ['-u', 'postgres']).stdout.toString().trim();
  const gid = spawnSync('id', ['-g', 'postgres']).stdout.toString().trim();
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL binary as the user the server runs as (it owns the data directory); resolves to its stdout. */
export async function asPostgres(command: string, args: string[]): Promise<string> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const { stdout } = await run(file, argv, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/**
 * The server's key must be owned by the user the server runs as and not readable by others (0600), or
 * Postgres refuses to start. Made once per data directory, reused by later starts of the same instance.
 */
async function ensureTls(dir: string, dataDir: string): Promise<PostgresTls> {
  const tls = { dir, ca: { certFile: join(dir, 'ca.pem'), keyFile: join(dir, 'ca.key') }, certUser: TLS_CERT_USER };
  if (!existsSync(join(dir, 'done'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await createTestCa(dir, 'ca', 'zeroloss test postgres CA');
    const server = await signTestCertificate(dir, ca, 'server', { server: true });
    chmodSync(server.keyFile, 0o600);
    const owner = serverOwner();
    if (owner) {
      chownSync(dir, owner.uid, owner.gid);
      chownSync(server.keyFile, owner.uid, owner.gid);
    }
    writeFileSync(join(dir, 'done'), '');
  }
  // First matching line wins: the certificate user is checked before initdb's trust lines.
  const hba = join(dataDir, 'pg_hba.conf');
  const rule = `hostssl all ${TLS_CERT_USER} 127.0.0.1/32 cert\n`;
  const current = readFileSync(hba, 'utf8');
  if (!current.startsWith(rule)) writeFileSync(hba, rule + current);
  return tls;
}

function extraSettings(settings: Record<string, string | number> | undefined): string {
  return Object.entries(settings ?? {})
    .map(([name, value]) => {
      if (!/^[a-z_.]+$/.test(name) || !/^[A-Za-z0-9_.-]+$/.test(String(value))) throw new Error(`bad server setting ${name}=${value}`);
      return ` -c ${name}=${value}`;
    })
    .join('');
}

function tlsSettings(tls: PostgresTls | undefined): string {
  if (!tls) return '';
  const file = (name: string) => join(tls.dir, name);
  return ` -c ssl=on -c ssl_cert_file=${file('server.crt')} -c ssl_key_file=${file('server.key')} -c ssl_ca_file=${file('ca.pem')}`;
}

/** Which process started the server of a data directory last: written after each successful start. */
const ownerFile = (dataDir: string) => `${dataDir}.owner`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A data directory whose server still runs on another port than the one asked for: pg_ctl starts servers
 * detached, so a run that was killed (Ctrl-C, a CI timeout, SIGKILL) leaves its server running, and the next
 * run, on a new free port, would fail with "another server might be running". If the process that started
 * that server is gone, the server is stopped (immediately: it is a throwaway) so this one can start; if it
 * still runs, the data directory is that run's, and starting is refused with who holds it.
 */
async function takeOver(pgCtl: string, dataDir: string, port: number): Promise<void> {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
  const running = await asPostgres(pgCtl, ['-D', dataDir, 'status']).then(
    () => true,
    () => false, // exit 3: no server runs there (a stale pid file, which pg_ctl start handles)
  );
  if (!running) return;
  // postmaster.pid: pid, data directory, start time, port, ...
  const serverPort = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[3]);
  if (serverPort === port) return; // the same instance asked for again: start() finds its port open
  const owner = existsSync(ownerFile(dataDir)) ? Number(readFileSync(ownerFile(dataDir), 'utf8')) : undefined;
  if (owner !== undefined && owner !== process.pid && alive(owner)) {
    throw new Error(
      `the throwaway PostgreSQL ${dataDir} is in use by process ${owner} (port ${serverPort}); ` +
        'two runs cannot share a named instance: wait for that run or give this one another name',
    );
  }
  await asPostgres(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '60', 'stop']);
}

/**
 * `settings` are extra server settings passed as `-c name=value` on every start (e.g. `wal_level: 'logical'`
 * for the WAL relay's tests); names and values are checked, since they go onto a command line.
 */
export async function startPostgresInstance(options: {
  port: number;
  name?: string;
  tls?: boolean;
  settings?: Record<string, string | number>;
}): Promise<PostgresInstance> {
  const bin = postgresBinDir();
  const dataDir = join(tmpdir(), `zeroloss-pg-${options.name ?? options.port}`);
  const pgCtl = join(bin, 'pg_ctl');
  const logFile = `${dataDir}.log`;

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(logFile, '');
    const owner = serverOwner();
    if (owner) {
      chownSync(dataDir, owner.uid, owner.gid);
      chownSync(logFile, owner.uid, owner.gid);
    }
    await asPostgres(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  }
  const tls = options.tls ? await ensureTls(`${dataDir}-tls`, dataDir) : undefined;
  await takeOver(pgCtl, dataDir, options.port);

  const start = async () => {
    if (await portOpen(options.port)) return;
    await asPostgres(pgCtl, [
      '-D',
      dataDir,
      '-l',
      logFile,
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${options.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200${tlsSettings(tls)}${extraSettings(options.settings)}`,
      'start',
    ]);
  };
  const stop = async (mode: 'immediate' | 'fast' = 'fast') => {
    if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
    await asPostgres(pgCtl, ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  };

  await start();
  writeFileSync(ownerFile(dataDir), String(process.pid));
  return {
    url: `postgres://postgres@127.0.0.1:${options.port}/postgres`,
    port: options.port,
    dataDir,
    ...(tls ? { tls } : {}),
    start,
    stop,
    async restart(mode = 'immediate') {
      await stop(mode);
      await start();
    },
    async discard() {
      await stop('immediate');
      for (const path of [dataDir, logFile, ownerFile(dataDir), ...(tls ? [tls.dir] : [])]) rmSync(path, { recursive: true, force: true });
    },
  };
}
