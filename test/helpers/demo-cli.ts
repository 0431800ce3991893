import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** `zeroloss demo …` as a child process through the CLI, as a newcomer runs it; its output kept as it comes. */
export class DemoProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MAIN, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (c: Buffer) => {
      this.stdout += c.toString();
    });
    this.child.stderr?.on('data', (c: Buffer) => {
      this.stderr += c.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
  }

  /** The `--json` result, once printed; undefined before. */
  result<T>(): T | undefined {
    try {
      return JSON.parse(this.stdout) as T;
    } catch {
      return undefined;
    }
  }
}

/** Runs `zeroloss demo … --json` to its end; its exit code, parsed result and stderr. */
export async function runDemo<T>(args: string[]): Promise<{ code: number | null; json: T; stderr: string }> {
  const demo = new DemoProcess([...args, '--json']);
  const code = await demo.exited;
  const json = demo.result<T>();
  if (json === undefined) throw new Error(`demo printed no JSON (exit ${code}):\n${demo.stdout}\n${demo.stderr.slice(-3_000)}`);
  return { code, json, stderr: demo.stderr };
}
