import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import type { WorkerMessage } from './consumer-worker.ts';

const WORKER = path.join(import.meta.dirname, 'consumer-worker.ts');

/**
 * Consumer worker processes for crash tests: start, SIGKILL, restart, and the counts they report.
 * A worker that dies on its own (not killed by us) is restarted when `restartOnDeath` says so.
 */
export class WorkerProcesses {
  readonly totals = { processed: 0, duplicates: 0, deadLettered: 0 };
  readonly kills = new Map<string, number>();
  /** Exits we did not cause (a poison message killing its process). */
  readonly deaths = new Map<string, number>();
  readonly errors: string[] = [];
  readonly #env: Record<string, string>;
  readonly #children = new Map<string, ChildProcess>();
  readonly #logs = new Map<string, string[]>();
  #killing = new Set<ChildProcess>();
  #closed = false;
  restartOnDeath: (worker: string) => boolean = () => false;

  constructor(env: Record<string, string>) {
    this.#env = env;
  }

  start(worker: string, extraEnv: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, [WORKER], {
      env: { ...process.env, ...this.#env, ...extraEnv, ZL_WORKER: worker },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.#children.set(worker, child);
    const log = this.#logs.get(worker) ?? [];
    this.#logs.set(worker, log);
    const keep = (chunk: Buffer) => {
      log.push(chunk.toString());
      if (log.length > 50) log.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('message', (m: WorkerMessage) => {
      if (m.kind === 'counts') {
        this.totals.processed += m.processed;
        this.totals.duplicates += m.duplicates;
        this.totals.deadLettered += m.deadLettered;
      } else if (m.kind === 'error' && this.errors.length < 200) {
        this.errors.push(`${m.worker}: ${m.message}`);
      }
    });
    child.once('exit', () => {
      if (this.#killing.delete(child) || this.#closed) return;
      this.deaths.set(worker, (this.deaths.get(worker) ?? 0) + 1);
      if (this.#children.get(worker) === child && this.restartOnDeath(worker)) this.start(worker, extraEnv);
    });
    return child;
  }

  /** SIGKILL, wait for the exit, start again. */
  async killAndRestart(worker: string): Promise<void> {
    const child = this.#children.get(worker);
    if (child && child.exitCode === null && child.signalCode === null) {
      this.#killing.add(child);
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      this.kills.set(worker, (this.kills.get(worker) ?? 0) + 1);
    }
    this.start(worker);
  }

  /** Asks every worker to stop gracefully (SIGTERM), killing any that take longer than `timeoutMs`. */
  async stopAll(timeoutMs = 20_000): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  logs(worker: string): string {
    return (this.#logs.get(worker) ?? []).join('');
  }
}
