import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { portOpen } from './port-open.ts';

/**
 * A throwaway RabbitMQ node on its own ports, for tests that stop, restart or kill the broker without
 * disturbing the machine's shared node (rabbit@localhost on 5672, distribution port 25672).
 *
 * How the installed RabbitMQ (3.10, Erlang/OTP 25) behaves here, and what follows:
 * - /usr/sbin/rabbitmq-server and rabbitmqctl are Debian wrappers that `su rabbitmq` when run as root and
 *   then read /var/lib/rabbitmq's Erlang cookie and /etc/rabbitmq's config, whose `listeners.tcp.local =
 *   127.0.0.1:5672` is the shared node's port. So the scripts under /usr/lib/rabbitmq/bin are run directly,
 *   with every file the node reads or writes (config, enabled plugins, env file, Mnesia and stream data,
 *   logs) and HOME in the instance's own folder. HOME holds the instance's own Erlang cookie: the CLI
 *   (rabbitmqctl, same HOME) authenticates with it, and nothing of the shared node's is read.
 * - Nodes register with epmd on 4369; the shared node's epmd daemon is used when it runs (a node starts
 *   one otherwise). The distribution port is set (RABBITMQ_DIST_PORT), since the default, AMQP port +
 *   20000, can collide with another node's.
 * - `rabbitmq-server -detached` returns at once and says nothing about failures (a port in use ends the
 *   node a few seconds later), so `start` waits for the AMQP port to accept connections (RabbitMQ opens
 *   its listeners last, once every boot step ran) and fails with the log's tail if the node died first.
 *   `rabbitmqctl await_startup` right after -detached fails ("node not running at all") until the node
 *   registered with epmd, and then re-checks only every 10 s: the port is the quicker condition.
 * - A fresh node boots in about 7-12 s here; stop_app and start_app take 2-3 s each, a CLI call ~1.5 s.
 */
const run = promisify(execFile);

export interface RabbitMqInstance {
  /** amqp://guest:guest@127.0.0.1:port */
  url: string;
  port: number;
  distPort: number;
  /** Erlang node name, zl-<id>@localhost. */
  node: string;
  /** The instance's folder: config, cookie, data (kept across restarts), logs. */
  dir: string;
  /** Starts the node if it is not running, and waits until it accepts AMQP connections. */
  start(): Promise<void>;
  /** `rabbitmqctl stop_app`: the broker application stops (connections drop), the Erlang node stays. */
  stopApp(): Promise<void>;
  /** `rabbitmqctl start_app`, then waits for the AMQP port. */
  startApp(): Promise<void>;
  /** `rabbitmqctl stop`: a clean stop of the whole node. */
  stop(): Promise<void>;
  /** SIGKILL of the node's Erlang VM: a crash. Data written before stays on disk (the OS has it). */
  kill(): Promise<void>;
  /** Kills the node (its data is deleted with it, so a clean stop would buy nothing) and deletes its folder. */
  remove(): Promise<void>;
}

export interface RabbitMqInstanceOptions {
  port: number;
  distPort: number;
  /** Node name prefix part; the node is `zl-<name>@localhost`. */
  name?: string;
  startTimeoutMs?: number;
}

function binDir(): string {
  const dir = process.env.ZL_RABBITMQ_BIN ?? '/usr/lib/rabbitmq/bin';
  if (!existsSync(join(dir, 'rabbitmq-server'))) {
    throw new Error(`no RabbitMQ server scripts in ${dir} (apt-get install rabbitmq-server, or set ZL_RABBITMQ_BIN)`);
  }
  return dir;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs: number, failed?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    const why = failed?.();
    if (why) throw new Error(`rabbitmq instance: ${what}: ${why}`);
    if (Date.now() > deadline) throw new Error(`rabbitmq instance: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Running, and not a zombie waiting for a parent that may never reap it (the VM detached from us). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export async function startRabbitMqInstance(options: RabbitMqInstanceOptions): Promise<RabbitMqInstance> {
  const bin = binDir();
  const { port, distPort } = options;
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const node = `zl-${options.name ?? port}@localhost`;
  const dir = mkdtempSync(join(tmpdir(), `zl-rabbitmq-${port}-`));
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  mkdirSync(join(dir, 'mnesia'), { recursive: true });
  mkdirSync(join(dir, 'log'), { recursive: true });
  const cookie = join(home, '.erlang.cookie');
  writeFileSync(cookie, `ZEROLOSS${port}X${distPort}X${process.pid}${Date.now()}`, { mode: 0o400 });
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [`listeners.tcp.default = 127.0.0.1:${port}`, 'log.console = false', 'log.file.level = warning', ''].join('\n'),
  );
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  const pidFile = join(dir, 'mnesia', `${node}.pid`);
  const pid = (): number | undefined => {
    try {
      const n = Number(readFileSync(pidFile, 'utf8').trim());
      return Number.isSafeInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  };
  const logTail = (): string => {
    try {
      return readFileSync(join(dir, 'log', `${node}.log`), 'utf8')
        .split('\n')
        .slice(-15)
        .join('\n');
    } catch {
      return '(no log)';
    }
  };
  const ctl = (...args: string[]) => run(join(bin, 'rabbitmqctl'), ['-n', node, ...args], { env, timeout: 60_000 });
  const waitForPort = (what: string) =>
    until(
      () => portOpen(port),
      what,
      startTimeoutMs,
      () => {
        const p = pid();
        return p !== undefined && !alive(p) ? `the node exited\n${logTail()}` : undefined;
      },
    );

  const start = async () => {
    if (await portOpen(port)) return;
    const running = pid();
    if (running !== undefined && alive(running)) {
      // The VM runs but the broker application does not (after stop_app).
      await ctl('start_app');
    } else {
      rmSync(pidFile, { force: true });
      const child = spawn(join(bin, 'rabbitmq-server'), ['-detached'], { env, cwd: dir, stdio: 'ignore', detached: true });
      child.unref();
    }
    await waitForPort(`${node} to accept AMQP connections on ${port}`);
  };
  const stopVm = async (clean: boolean) => {
    const p = pid();
    if (p === undefined || !alive(p)) return;
    if (clean) await ctl('stop').catch(() => {});
    if (alive(p)) process.kill(p, 'SIGKILL');
    await until(async () => !alive(p), `${node} (pid ${p}) to exit`, 60_000);
    await until(async () => !(await portOpen(port)), `${node} to release ${port}`, 30_000);
    // epmd forgets a node when its VM's connection closes; the next start registers the name again.
    rmSync(pidFile, { force: true });
  };

  await start();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    distPort,
    node,
    dir,
    start,
    async stopApp() {
      await ctl('stop_app');
      await until(async () => !(await portOpen(port)), `${node} to close ${port}`, 30_000);
    },
    async startApp() {
      await ctl('start_app');
      await waitForPort(`${node} to accept AMQP connections again`);
    },
    stop: () => stopVm(true),
    kill: () => stopVm(false),
    async remove() {
      await stopVm(false);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
