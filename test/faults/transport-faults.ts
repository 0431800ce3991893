import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunReport } from '../../faults/report.ts';

const CLI = fileURLToPath(new URL('../../faults/cli.ts', import.meta.url));

/**
 * Runs the fault suite's short `transport-faults` scenario on one transport (throwaway Postgres, Redis for
 * the inbox cache and the transport's own broker on free ports; the shared servers are not touched) and
 * checks its report: every committed message applied exactly once, in key order, nothing lost or
 * invented, every fault injected, the run drained. Topic duplicates are allowed and printed.
 */
export async function runTransportFaults(transport: 'redis' | 'rabbitmq'): Promise<void> {
  const started = Date.now();
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [CLI, 'transport-faults', '--transport', transport, '--messages', '1000', '--seed', '15', '--stall-seconds', '20', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-30_000);
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  const seconds = (Date.now() - started) / 1000;
  assert.ok(run.stdout.trim().startsWith('{'), `a JSON report on stdout (stderr tail:\n${run.stderr.slice(-5_000)})`);
  const report = JSON.parse(run.stdout) as RunReport;
  const result = report.scenarios[0];
  assert.ok(result, 'one scenario reported');
  console.log(
    `[faults ${transport}] ${seconds.toFixed(1)} s: ${JSON.stringify(result.figures)}; ` +
      `${result.details.relayKills} relay kills, ${result.details.consumerKills} consumer kills; faults: ${result.faults.map((f) => `+${f.at}s ${f.what}`).join('; ')}`,
  );
  const context = `\n${result.failures.join('; ')}\nstderr tail:\n${run.stderr.slice(-5_000)}`;
  assert.equal(report.transport, transport);
  assert.equal(result.figures.committed, 1000, `every message committed${context}`);
  assert.equal(result.figures.lost, 0, `lost${context}`);
  assert.equal(result.figures.appliedTwice, 0, `applied twice${context}`);
  assert.equal(result.figures.orderViolations, 0, `order violations${context}`);
  assert.equal(result.figures.phantom, 0, `phantoms${context}`);
  assert.equal(result.figures.effects, 1000, `every message applied${context}`);
  assert.equal(result.figures.deadLettered, 0, `no dead letters${context}`);
  assert.equal(result.details.notOnTopic, 0, `every message on the broker${context}`);
  assert.equal(result.figures.onTopic, result.figures.committed + result.figures.topicDuplicates, 'duplicates counted');
  assert.ok(result.details.drained, `the run drained${context}`);
  // Two of each are scheduled; one that finds its target between a crash of its own and the supervisor's
  // restart (a member started while the broker was down) has nothing to kill and is not counted.
  assert.ok(result.details.relayKills >= 1, 'a relay was killed');
  assert.ok(result.details.consumerKills >= 1, 'a consumer was killed');
  assert.ok(
    result.faults.some((f) => f.what.startsWith('broker back on the same data')),
    `the broker was restarted: ${JSON.stringify(result.faults)}`,
  );
  assert.equal(run.code, 0, `the suite passed${context}`);
  assert.ok(report.pass);
}
