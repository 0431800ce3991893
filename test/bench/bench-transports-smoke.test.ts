import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '../..');

// Keeps the Redis Streams and RabbitMQ benchmarks from rotting: a tiny run of both (the WAL rows start a
// throwaway PostgreSQL each), and their JSON contract. The insert-only floor is a measurement, not a shipped
// mode: it has no target.
test('npm run bench -- redis rabbitmq --messages 40 --json prints a relay, a WAL relay, its insert-only floor and a consumer result per transport', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['bench/run.ts', 'redis', 'rabbitmq', '--messages', '40', '--reps', '1', '--warmup', '0', '--json'],
    { cwd: ROOT, env: process.env, timeout: 120_000 },
  );
  const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
  assert.deepEqual(
    results.map((r) => r.name),
    [
      'redis-relay',
      'redis-relay-wal',
      'redis-relay-wal-insert-only',
      'redis-relay-wal-insert-only-floor',
      'redis-consumer',
      'rabbitmq-relay',
      'rabbitmq-relay-wal',
      'rabbitmq-relay-wal-insert-only',
      'rabbitmq-relay-wal-insert-only-floor',
      'rabbitmq-consumer',
    ],
  );
  for (const result of results) {
    assert.equal(result.messages, 40);
    for (const key of ['throughput', 'baselineThroughput', 'ratio', 'p50Ms', 'p99Ms', 'rssMb']) {
      const value = result[key];
      assert.ok(
        typeof value === 'number' && Number.isFinite(value) && value > 0,
        `${result.name} ${key} is a positive number, got ${String(value)}`,
      );
    }
    if (String(result.name).endsWith('-floor')) continue;
    assert.equal(typeof (result.target as { met?: unknown } | undefined)?.met, 'boolean');
  }
});
