import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '../..');

// Keeps `npm run bench` from rotting: one small benchmark end to end, and the JSON contract of its output.
test('npm run bench -- enqueue --messages 40 --json prints its results (the outbox, the insert-only outbox) with the documented keys', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['bench/run.ts', 'enqueue', '--messages', '40', '--reps', '1', '--warmup', '0', '--json'],
    { cwd: ROOT, env: process.env, timeout: 60_000 },
  );
  const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    results.map((r) => r.name),
    ['enqueue', 'enqueue-insert-only'],
  );
  for (const result of results) {
    for (const key of ['name', 'messages', 'throughput', 'baselineThroughput', 'ratio', 'p50Ms', 'p99Ms', 'rssMb']) {
      assert.ok(key in result, `result has ${key}`);
    }
    assert.equal(result.messages, 40);
    for (const key of ['throughput', 'baselineThroughput', 'ratio', 'p50Ms', 'p99Ms', 'rssMb']) {
      const value = result[key];
      assert.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${key} is a positive number, got ${String(value)}`);
    }
  }
});

// The WAL counting tool (bench/wal-cost.ts) on a throwaway server: every path counted, and the counts say
// what they must: the shipped enqueue writes more WAL per message than a primary-key-only insert.
test('node bench/wal-cost.ts 200 --json counts WAL records per message for every path', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['bench/wal-cost.ts', '200', '--json'], {
    cwd: ROOT,
    env: process.env,
    timeout: 120_000,
  });
  const result = JSON.parse(stdout) as {
    messages: number;
    perMessage: Record<string, { records: number; bytes: number; byType: Record<string, number> }>;
    walsenderCpuUsPerMessage: Record<string, number>;
  };
  assert.equal(result.messages, 200);
  assert.deepEqual(Object.keys(result.perMessage).sort(), ['enqueue', 'pollingRelay', 'referenceInsertOnly', 'walRelayRecord']);
  for (const [path, r] of Object.entries(result.perMessage)) {
    assert.ok(r.records >= 1 && r.bytes > 0, `${path}: at least one record per message, got ${JSON.stringify(r)}`);
  }
  const { enqueue, referenceInsertOnly } = result.perMessage;
  assert.ok((enqueue?.records ?? 0) > (referenceInsertOnly?.records ?? Infinity), 'the enqueue writes more WAL than a bare insert');
  for (const [name, us] of Object.entries(result.walsenderCpuUsPerMessage)) assert.ok(Number.isFinite(us) && us >= 0, `${name}: ${us}`);
});
