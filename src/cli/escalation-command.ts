import { spawn } from 'node:child_process';
import type { ReconcileReport } from '../operations/reconcile.ts';

/**
 * `serve --on-escalate <command>`: the emergency plan as a shell command. It gets the held report as JSON
 * on stdin and ZEROLOSS_RUN_ID in its environment. A non-zero exit, or still running after `timeoutMs`
 * (then it is killed, with whatever it started), is a failure whose message carries the end of its stderr. Its stdout is discarded.
 */
export function escalationCommand(command: string, timeoutMs: number): (report: ReconcileReport) => Promise<void> {
  return (report) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], {
        stdio: ['pipe', 'ignore', 'pipe'],
        env: { ...process.env, ZEROLOSS_RUN_ID: report.runId ?? '' },
        // A group of its own, so a timeout kills what the shell started too, not the shell alone.
        detached: true,
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-2_000);
      });
      const timer = setTimeout(() => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
        reject(new Error(`--on-escalate command killed after ${timeoutMs} ms`));
      }, timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`--on-escalate command exited with ${code ?? signal}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
      });
      // A command that does not read its stdin closes the pipe early: not a failure of its own.
      child.stdin.on('error', () => {});
      child.stdin.end(JSON.stringify(report));
    });
}
