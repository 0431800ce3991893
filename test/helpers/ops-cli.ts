import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `zeroloss <args>` from the sources as a child process, as an operator would. */
export async function zeroloss(args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Runs a command with --json and parses its output. */
export async function zerolossJson<T>(args: string[]): Promise<{ code: number; json: T; stderr: string }> {
  const r = await zeroloss([...args, '--json']);
  try {
    return { code: r.code, json: JSON.parse(r.stdout) as T, stderr: r.stderr };
  } catch {
    throw new Error(`zeroloss ${args[0]} printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

/** Runs an in-process CLI command with its stdout swallowed (the exit status is what the test checks). */
export async function quietly(fn: () => Promise<number>): Promise<number> {
  const write = process.stdout.write.bind(process.stdout);
  const log = console.log;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  console.log = () => {};
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
    console.log = log;
  }
}
