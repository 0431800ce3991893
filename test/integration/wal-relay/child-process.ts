import { type ChildProcess, spawn } from 'node:child_process';

/** A child process whose output the test reads, to SIGKILL at any instant. */
export class Child {
  readonly #args: string[];
  readonly #env: NodeJS.ProcessEnv;
  child: ChildProcess | undefined;
  output = '';

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.#args = args;
    this.#env = env;
  }

  start(): this {
    const child = spawn(process.execPath, this.#args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.#env } });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.child = child;
    return this;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async exited(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    await new Promise((resolve) => child.once('exit', resolve));
  }

  /** Signals the process and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = this.exited();
    child.kill(signal);
    await exited;
  }
}
