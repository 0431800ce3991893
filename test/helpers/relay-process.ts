import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `zeroloss relay` as a real child process so tests can SIGKILL it at any instant. */
export class RelayProcess {
  readonly #args: string[];
  #child: ChildProcess | undefined;
  starts = 0;
  kills = 0;
  output = '';

  constructor(options: { pgUrl: string; schema: string; brokers: string[]; extra?: string[] }) {
    this.#args = [
      MAIN, 'relay',
      '--pg', options.pgUrl,
      '--schema', options.schema,
      '--kafka', options.brokers.join(','),
      '--lease-ms', '4000',
      '--delivery-timeout-ms', '3000',
      '--backoff-base-ms', '100',
      '--idle-interval-ms', '1000',
      '--batch-size', '200',
      ...(options.extra ?? []),
    ];
  }

  start(): void {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return;
    const child = spawn(process.execPath, this.#args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.#child = child;
    this.starts++;
  }

  kill(): void {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.kill('SIGKILL');
      this.kills++;
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
