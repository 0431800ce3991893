import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, chownSync, writeFileSync } from 'node:fs';
import { portOpen } from './port-open.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL cluster on its own port, for tests that restart or kill the database. The
 * machine's shared server on 5432 is never touched, so other test runs are not disturbed.
 *
 * Postgres refuses to run as root; when we are root the server runs as the `postgres` user.
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
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'pg_ctl')));
  if (!dir) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)');
  return dir;
}

const asRoot = process.getuid?.() === 0;

async function asPostgres(command: string, args: string[]): Promise<void> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  await run(file, argv, { timeout: 60_000 });
}

export async function startPostgresInstance(options: { port: number; name?: string }): Promise<PostgresInstance> {
  const bin = binDir();
  const dataDir = join(tmpdir(), `zeroloss-pg-${options.name ?? options.port}`);
  const pgCtl = join(bin, 'pg_ctl');
  const logFile = `${dataDir}.log`;

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(logFile, '');
    if (asRoot) {
      const pw = spawnSync('id', ['-u', 'postgres']).stdout.toString().trim();
      const gid = spawnSync('id', ['-g', 'postgres']).stdout.toString().trim();
      chownSync(dataDir, Number(pw), Number(gid));
      chownSync(logFile, Number(pw), Number(gid));
    }
    await asPostgres(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  }

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
      `-p ${options.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200`,
      'start',
    ]);
  };
  const stop = async (mode: 'immediate' | 'fast' = 'fast') => {
    if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
    await asPostgres(pgCtl, ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  };

  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${options.port}/postgres`,
    port: options.port,
    dataDir,
    start,
    stop,
    async restart(mode = 'immediate') {
      await stop(mode);
      await start();
    },
  };
}
