import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '../..');

// Keeps the hot-key and WAL end-to-end benchmarks (issue #18) from rotting: a tiny run of each on the test
// Kafka (the WAL one starts a throwaway PostgreSQL), and their JSON contract.
test('npm run bench -- consumer-keys e2e-wal --messages 30 --rate 200 --json prints the 1-key, 10-key and WAL e2e results', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['bench/run.ts', 'consumer-keys', 'e2e-wal', '--messages', '30', '--rate', '200', '--reps', '1', '--warmup', '0', '--json'],
    { cwd: ROOT, env: process.env, timeout: 120_000 },
  );
  const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    results.map((r) => r.name),
    ['consumer-1-key', 'consumer-10-keys', 'e2e-wal-200'],
  );
  for (const result of results) {
    assert.equal(result.messages, 30);
    for (const key of ['throughput', 'baselineThroughput', 'p50Ms', 'p99Ms', 'rssMb']) {
      const value = result[key];
      assert.ok(
        typeof value === 'number' && Number.isFinite(value) && value > 0,
        `${result.name} ${key} is a positive number, got ${String(value)}`,
      );
    }
  }
  for (const result of [results[0], results[2]]) assert.equal(typeof (result?.target as { met?: unknown } | undefined)?.met, 'boolean');
});

// The relay benchmark's rows, the WAL ones on a throwaway PostgreSQL: the shipped relays, the WAL relay
// without its record, and the insert-only floor (bench/lib/insert-only-outbox.ts), each drained in full.
test('npm run bench -- relay --messages 30 --json prints the polling, WAL, unrecorded and insert-only floor rows', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['bench/run.ts', 'relay', '--messages', '30', '--reps', '1', '--warmup', '0', '--json'],
    { cwd: ROOT, env: process.env, timeout: 180_000 },
  );
  const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    results.map((r) => r.name),
    ['relay', 'relay-wal', 'relay-wal-insert-only', 'relay-wal-unrecorded', 'relay-wal-insert-only-floor'],
  );
  for (const result of results) {
    assert.equal(result.messages, 30);
    for (const key of ['throughput', 'baselineThroughput', 'ratio']) {
      const value = result[key];
      assert.ok(
        typeof value === 'number' && Number.isFinite(value) && value > 0,
        `${result.name} ${key} is a positive number, got ${String(value)}`,
      );
    }
  }
});
