import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { startHealthServer } from '../../../src/adapters/http/health-server.ts';

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

test('a probe storm costs one round of checks; nothing but the three routes is served', async () => {
  let calls = 0;
  const registry = new Registry();
  new Counter({ name: 'zeroloss_example_total', help: 'example', registers: [registry] }).inc();
  const server = await startHealthServer({
    port: 0,
    host: '127.0.0.1',
    registry,
    checks: {
      database: async () => {
        calls++;
        return { ok: true };
      },
    },
    cacheMs: 60_000,
  });
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, () => get(server.port, '/readyz')));
    assert.ok(answers.every((a) => a.status === 200));
    assert.deepEqual(JSON.parse(answers[0]?.body ?? ''), { ready: true, checks: { database: { ok: true } } });
    assert.equal(calls, 1);
    assert.equal((await get(server.port, '/healthz')).status, 200);
    assert.match((await get(server.port, '/metrics')).body, /zeroloss_example_total 1/);
    assert.equal((await get(server.port, '/readyz?verbose=1')).status, 200);
    assert.equal((await get(server.port, '/')).status, 404);
    assert.equal((await get(server.port, '/dlq')).status, 404);
    assert.equal((await get(server.port, '/readyz', 'POST')).status, 405);
  } finally {
    await server.close();
  }
});

test('a check that hangs or throws fails /readyz with a reason that carries no credentials', async () => {
  const server = await startHealthServer({
    port: 0,
    host: '127.0.0.1',
    registry: new Registry(),
    checks: {
      database: () => new Promise(() => {}),
      broker: () => {
        throw new Error('cannot reach postgres://app:s3cret@db:5432/app');
      },
      loop: () => ({ ok: true }),
    },
    checkTimeoutMs: 50,
    cacheMs: 0,
  });
  try {
    const answer = await get(server.port, '/readyz');
    assert.equal(answer.status, 503);
    const body = JSON.parse(answer.body) as { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> };
    assert.equal(body.ready, false);
    assert.deepEqual(body.checks.database, { ok: false, detail: 'no answer within 50 ms' });
    assert.equal(body.checks.broker?.ok, false);
    assert.doesNotMatch(answer.body, /s3cret|app:/);
    assert.match(body.checks.broker?.detail ?? '', /\/\/\*\*\*@db:5432/);
    assert.deepEqual(body.checks.loop, { ok: true });
  } finally {
    await server.close();
  }
});
