import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { RunReport } from '../../faults/report.ts';

/**
 * Smoke test of the fault suite (issue 6) inside `npm test`'s budget: one short scenario, 1,000 messages,
 * on the shared single Kafka node, with a deliberately broken build. The checker must fail the run and say
 * why (effects applied twice), while every other figure stays consistent, so we know it counts for real
 * rather than failing everything. The full suite is `npm run faults` (docs/reliability.md).
 *
 * The broken build used here is the fault worker's test-only `effect-outside-transaction` handler: its
 * transient failures then apply effects a second time, deterministically. The relay's own test-only switch
 * (`relay-ack-before-send`) needs Kafka made unreachable to lose messages for certain, which takes the
 * proxied 3-node cluster: too slow for this budget, so it is exercised by the full suite.
 */
const CLI = fileURLToPath(new URL('../../faults/cli.ts', import.meta.url));

function runFaults(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the fault suite reports double effects of a deliberately broken handler and exits non-zero', { timeout: 150_000 }, async () => {
  const started = Date.now();
  const run = await runFaults([
    'handler-faults',
    '--messages',
    '1000',
    '--seed',
    '11',
    '--kafka',
    'single',
    '--broken',
    'effect-outside-transaction',
    '--stall-seconds',
    '10',
    '--json',
  ]);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(run.stdout.trim().startsWith('{'), `a JSON report on stdout (stderr tail:\n${run.stderr.slice(-3_000)})`);
  const report = JSON.parse(run.stdout) as RunReport;
  const result = report.scenarios[0];
  assert.ok(result, 'one scenario reported');
  console.log(`[faults smoke] ${seconds.toFixed(1)} s: ${JSON.stringify(result.figures)}; failures: ${result.failures.join('; ')}`);

  assert.equal(run.code, 1, 'a broken build fails the run');
  assert.equal(report.pass, false);
  assert.equal(report.broken, 'effect-outside-transaction');
  assert.ok(result.figures.appliedTwice > 0, 'effects applied twice are found');
  assert.ok(
    result.failures.some((f) => f.startsWith('appliedTwice')),
    'the failure names the double effects',
  );
  // The rest of the picture is intact: the checker does not simply fail everything.
  assert.equal(result.figures.committed, 1000, 'every message committed');
  assert.equal(result.figures.lost, 0);
  assert.equal(result.figures.phantom, 0);
  assert.equal(result.figures.orderViolations, 0);
  assert.equal(result.figures.effects, 1000, 'the broken handler applies every effect, permanent failures included');
  assert.ok(result.details.drained, 'the run drained');
  assert.equal(result.details.rolledBackOnPurpose > 0, true, 'some transactions were rolled back on purpose');
  assert.ok(result.figures.onTopic >= 1000, 'every committed message reached the topic');
});
