import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '../..');

// Keeps `npm run bench` from rotting: one small benchmark end to end, and the JSON contract of its output.
test('npm run bench -- enqueue --messages 40 --json prints one result with the documented keys', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['bench/run.ts', 'enqueue', '--messages', '40', '--reps', '1', '--warmup', '0', '--json'],
    { cwd: ROOT, env: process.env, timeout: 60_000 },
  );
  const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
  assert.equal(results.length, 1);
  const [result] = results;
  for (const key of ['name', 'messages', 'throughput', 'baselineThroughput', 'ratio', 'p50Ms', 'p99Ms', 'rssMb']) {
    assert.ok(key in (result as object), `result has ${key}`);
  }
  assert.equal(result?.name, 'enqueue');
  assert.equal(result?.messages, 40);
  for (const key of ['throughput', 'baselineThroughput', 'ratio', 'p50Ms', 'p99Ms', 'rssMb']) {
    const value = result?.[key];
    assert.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${key} is a positive number, got ${String(value)}`);
  }
});
