import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fastRelayArgs } from '../../faults/processes.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `zeroloss relay` as a real child process so tests can SIGKILL it at any instant. */
export class RelayProcess {
  readonly #args: string[];
  #child: ChildProcess | undefined;
  starts = 0;
  kills = 0;
  output = '';

  constructor(options: { pgUrl: string; schema: string; brokers: string[]; extra?: string[] }) {
    this.#args = [MAIN, ...fastRelayArgs({ ...options, leaseMs: 4_000, deliveryTimeoutMs: 3_000 }), '--verbose', ...(options.extra ?? [])];
  }

  #alive(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  start(): void {
    if (this.#alive()) return;
    const child = spawn(process.execPath, this.#args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.#child = child;
    this.starts++;
  }

  /** SIGKILL, and wait until the process is gone, so a following start() really starts a new one. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || !this.#alive()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    this.kills++;
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || !this.#alive()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
