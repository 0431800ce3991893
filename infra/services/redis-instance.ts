import { execFile, spawn } from 'node:child_process';
import { portOpen } from './port-open.ts';
import { promisify } from 'node:util';

/**
 * A throwaway Redis on its own port, for tests that stop or flush Redis without disturbing the
 * machine's shared server on 6379. Nothing is persisted: a restart is an empty cache, as after a flush.
 */
const run = promisify(execFile);

export interface RedisInstance {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  flush(): Promise<void>;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis instance: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedisInstance(options: { port: number }): Promise<RedisInstance> {
  const { port } = options;
  const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  const start = async () => {
    if (await portOpen(port)) return;
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      { detached: true, stdio: 'ignore' },
    );
    child.unref();
    await until(() => portOpen(port), `redis on ${port}`);
  };
  const stop = async () => {
    if (!(await portOpen(port))) return;
    await cli('shutdown', 'nosave').catch(() => {});
    await until(async () => !(await portOpen(port)), `redis on ${port} to stop`);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    async flush() {
      await cli('flushall');
    },
  };
}
