import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { portOpen } from './port-open.ts';

/**
 * A throwaway Redis on its own port, for tests that stop, flush or reconfigure Redis without disturbing
 * the machine's shared server on 6379. By default nothing is persisted (`appendonly no`, no RDB): a restart
 * is an empty cache, as after a flush. `settings` override any redis-server option (`appendonly: 'yes'`,
 * `appendfsync: 'always'`, `maxmemory`...); the instance's files live in its own temp folder, kept across
 * stop/start when it persists (so an AOF survives a restart), and deleted by `remove`.
 */
const run = promisify(execFile);

export interface RedisInstance {
  /** redis://[:password@]127.0.0.1:port */
  url: string;
  port: number;
  /** The working directory (AOF, RDB) of this instance. */
  dir: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL of redis-server: a crash; what it had written to its files (AOF) is kept for the next start. */
  kill(): Promise<void>;
  flush(): Promise<void>;
  /** Stops the instance and deletes its folder. */
  remove(): Promise<void>;
}

export interface RedisInstanceOptions {
  port: number;
  /** redis-server options by name, without the leading `--`; they override the defaults above. */
  settings?: Record<string, string>;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis instance: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedisInstance(options: RedisInstanceOptions): Promise<RedisInstance> {
  const { port } = options;
  const dir = mkdtempSync(join(tmpdir(), `zl-redis-${port}-`));
  const settings: Record<string, string> = { save: '', appendonly: 'no', ...options.settings, dir };
  // Nothing to keep across a restart: the folder goes with each stop, so callers that never remove leave none.
  const ephemeral = settings.appendonly !== 'yes' && settings.save === '';
  const password = settings.requirepass;
  const auth = password ? ['--no-auth-warning', '-a', password] : [];
  const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...args], { timeout: 10_000 });
  const start = async () => {
    if (await portOpen(port)) return;
    mkdirSync(dir, { recursive: true });
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no'];
    for (const [name, value] of Object.entries(settings)) args.push(`--${name}`, value);
    const child = spawn('redis-server', args, { detached: true, stdio: 'ignore' });
    child.unref();
    await until(() => portOpen(port), `redis on ${port}`);
  };
  const stop = async () => {
    if (!(await portOpen(port))) return;
    await cli('shutdown', 'nosave').catch(() => {});
    await until(async () => !(await portOpen(port)), `redis on ${port} to stop`);
    if (ephemeral) rmSync(dir, { recursive: true, force: true });
  };
  const kill = async () => {
    if (!(await portOpen(port))) return;
    const { stdout } = await cli('info', 'server');
    const pid = Number(/process_id:(\d+)/.exec(stdout)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`redis instance: no process_id in INFO of ${port}`);
    process.kill(pid, 'SIGKILL');
    await until(async () => !(await portOpen(port)), `redis on ${port} to die`);
  };
  await start();
  return {
    url: password ? `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    port,
    dir,
    start,
    stop,
    kill,
    async flush() {
      await cli('flushall');
    },
    async remove() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
