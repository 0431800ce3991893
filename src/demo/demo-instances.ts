import { type ChildProcess, spawn } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { PGlite } from '@electric-sql/pglite';
import type { RoleConfig, RoleEvent } from './demo-role.ts';
import { PgliteSession } from './pglite-host.ts';

/** Where instances run: worker threads over the in-process PGlite, or child processes over Postgres. */
export type InstanceHost = { kind: 'thread'; pglite: PGlite } | { kind: 'process'; pgUrl: string };

// The entry point next to this file: demo-worker.ts from source, demo-worker.js once built.
const ENTRY = new URL(`./demo-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

interface Instance {
  config: RoleConfig;
  /** Set when we end it (kill or stop): its exit is then expected. */
  ending: boolean;
  ready: Promise<void>;
  stopped: Promise<void>;
  kill(): Promise<void>;
  askToStop(): void;
}

/**
 * Starts, kills and restarts the demo's relay and consumer instances. A kill is a crash: a thread is
 * terminated mid-statement and its database session dropped (its open transaction rolled back, as a
 * server does for a dead connection); a process gets SIGKILL. Nothing of the graceful path runs: no final
 * commit, no lease or partition handed back; those expire, as they would after a real crash.
 */
export class DemoInstances {
  readonly kills = { relay: 0, consumer: 0 };
  /** Exits nobody asked for (an instance that died of its own error); such an instance is restarted. */
  unexpectedExits = 0;
  readonly #host: InstanceHost;
  readonly #onEvent: (name: string, event: RoleEvent) => void;
  readonly #instances = new Map<string, Instance>();
  readonly #stderr = new Map<string, string>();
  #closing = false;

  constructor(host: InstanceHost, onEvent: (name: string, event: RoleEvent) => void) {
    this.#host = host;
    this.#onEvent = onEvent;
  }

  /** Starts an instance; resolves when it reports ready. */
  start(config: RoleConfig): Promise<void> {
    const instance = this.#host.kind === 'thread' ? this.#thread(config, this.#host.pglite) : this.#process(config, this.#host.pgUrl);
    this.#instances.set(config.name, instance);
    return instance.ready;
  }

  /** Crashes the instance and starts a fresh one in its place (not waiting for it to be ready). */
  async killAndRestart(name: string): Promise<void> {
    const instance = this.#instances.get(name);
    if (!instance || this.#closing) return;
    instance.ending = true;
    await instance.kill();
    this.kills[instance.config.role]++;
    if (!this.#closing) this.start(instance.config).catch(() => {});
  }

  /** The graceful path, for the end of the run: each instance finishes its work, then goes. */
  async stopAll(timeoutMs = 15_000): Promise<void> {
    this.#closing = true;
    await Promise.all(
      [...this.#instances.values()].map(async (instance) => {
        instance.ending = true;
        instance.askToStop();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([instance.stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
        clearTimeout(timer);
        await instance.kill();
      }),
    );
  }

  /** The last lines an instance process wrote to stderr (process mode), for diagnostics. */
  stderr(name: string): string {
    return this.#stderr.get(name) ?? '';
  }

  #thread(config: RoleConfig, pglite: PGlite): Instance {
    const { port1, port2 } = new MessageChannel();
    const session = new PgliteSession(pglite, port1);
    const worker = new Worker(ENTRY, { workerData: { config, port: port2 }, transferList: [port2] });
    const instance = this.#track(config, (listen) => {
      worker.on('message', listen.message);
      worker.on('error', (error) => listen.message({ kind: 'error', message: `${config.name} died: ${error.message}` }));
      worker.once('exit', () => {
        session.drop();
        listen.exit();
      });
    });
    instance.kill = async () => {
      // Drop the session first: from this instant nothing the instance sent is run, and its open
      // transaction is rolled back, before the thread has even stopped.
      session.drop();
      await worker.terminate();
    };
    instance.askToStop = () => worker.postMessage('stop');
    return instance;
  }

  #process(config: RoleConfig, pgUrl: string): Instance {
    const child: ChildProcess = spawn(process.execPath, [fileURLToPath(ENTRY)], {
      env: { ...process.env, ZL_DEMO_ROLE: JSON.stringify(config), ZL_DEMO_PG_URL: pgUrl },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr.set(config.name, ((this.#stderr.get(config.name) ?? '') + chunk.toString()).slice(-4_000));
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const instance = this.#track(config, (listen) => {
      child.on('message', listen.message);
      child.once('exit', listen.exit);
    });
    instance.kill = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    };
    instance.askToStop = () => {
      if (child.connected) child.send('stop');
    };
    return instance;
  }

  #track(config: RoleConfig, attach: (listen: { message: (event: RoleEvent) => void; exit: () => void }) => void): Instance {
    let readyResolve: () => void = () => {};
    let readyReject: (error: Error) => void = () => {};
    let stoppedResolve: () => void = () => {};
    const instance: Instance = {
      config,
      ending: false,
      ready: new Promise<void>((resolve, reject) => {
        readyResolve = resolve;
        readyReject = reject;
      }),
      stopped: new Promise<void>((resolve) => {
        stoppedResolve = resolve;
      }),
      kill: async () => {},
      askToStop: () => {},
    };
    instance.ready.catch(() => {});
    attach({
      message: (event) => {
        if (event.kind === 'ready') readyResolve();
        if (event.kind === 'stopped') stoppedResolve();
        this.#onEvent(config.name, event);
      },
      exit: () => {
        readyReject(
          new Error(`${config.name} exited before it was ready${this.#stderr.has(config.name) ? `: ${this.stderr(config.name)}` : ''}`),
        );
        stoppedResolve();
        if (instance.ending || this.#closing) return;
        // Died of its own accord: a supervisor would start it again, and so do we.
        this.unexpectedExits++;
        this.#onEvent(config.name, { kind: 'error', message: `${config.name} exited unexpectedly; restarting it` });
        if (this.#instances.get(config.name) === instance) this.start(config).catch(() => {});
      },
    });
    return instance;
  }
}
