import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from '../../infra/services/port-open.ts';
import { type RedisInstance, startRedisInstance } from '../../infra/services/redis-instance.ts';
import { RedisStreamsAdmin } from '../../src/adapters/redis-streams/redis-streams-admin.ts';
import { zeroloss, zerolossJson } from '../helpers/ops-cli.ts';

/**
 * Issue 15, acceptance 4: `zeroloss doctor --redis` against throwaway Redis servers configured one way or
 * another (never the shared 6379, which runs appendonly no by design).
 */
const instances: RedisInstance[] = [];
after(async () => {
  await Promise.all(instances.map((i) => i.remove()));
});

async function redisWith(settings: Record<string, string>): Promise<RedisInstance> {
  const instance = await startRedisInstance({ port: await freePort(), settings });
  instances.push(instance);
  return instance;
}

const DURABLE = { appendonly: 'yes', appendfsync: 'always' };

interface Report {
  ok: boolean;
  redis: { url: string; role: string };
  findings: Array<{ severity: string; subject: string; setting: string; actual: string; message: string }>;
}

const errors = (r: Report) => r.findings.filter((f) => f.severity === 'error').map((f) => `${f.subject} ${f.setting}`);

test('a Redis without the append-only file fails, naming appendonly', async () => {
  const redis = await redisWith({ appendonly: 'no' });
  const r = await zeroloss(['doctor', '--redis', redis.url]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^ERROR redis appendonly=no/m);
  assert.match(r.stdout, /^FAIL/m);
});

test('appendonly yes with appendfsync always passes', async () => {
  const redis = await redisWith(DURABLE);
  const r = await zerolossJson<Report>(['doctor', '--redis', redis.url]);
  assert.equal(r.code, 0, JSON.stringify(r.json));
  assert.equal(r.json.ok, true);
  assert.deepEqual(errors(r.json), []);
  assert.equal(r.json.redis.role, 'master');
});

test('appendfsync everysec fails by default and passes when --redis-fsync everysec accepts it', async () => {
  const redis = await redisWith({ appendonly: 'yes', appendfsync: 'everysec' });
  const strict = await zeroloss(['doctor', '--redis', redis.url]);
  assert.equal(strict.code, 1, strict.stdout + strict.stderr);
  assert.match(strict.stdout, /^ERROR redis appendfsync=everysec .*~1 s of acknowledged entries/m);
  const accepted = await zerolossJson<Report>(['doctor', '--redis', redis.url, '--redis-fsync', 'everysec']);
  assert.equal(accepted.code, 0, JSON.stringify(accepted.json));
  const fsync = accepted.json.findings.find((f) => f.setting === 'appendfsync');
  assert.equal(fsync?.severity, 'warning');
  const invalid = await zeroloss(['doctor', '--redis', redis.url, '--redis-fsync', 'sometimes']);
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /--redis-fsync must be one of no, everysec, always/);
});

test('an evicting maxmemory-policy with a maxmemory fails; no-appendfsync-on-rewrite yes fails', async () => {
  const redis = await redisWith({ ...DURABLE, maxmemory: '100mb', 'maxmemory-policy': 'allkeys-lru', 'no-appendfsync-on-rewrite': 'yes' });
  const r = await zerolossJson<Report>(['doctor', '--redis', redis.url]);
  assert.equal(r.code, 1);
  assert.deepEqual(errors(r.json).sort(), ['redis maxmemory-policy', 'redis no-appendfsync-on-rewrite']);
  const unlimited = await redisWith({ ...DURABLE, 'maxmemory-policy': 'allkeys-lru' });
  const warned = await zerolossJson<Report>(['doctor', '--redis', unlimited.url]);
  assert.equal(warned.code, 0, JSON.stringify(warned.json));
  assert.equal(warned.json.findings.find((f) => f.setting === 'maxmemory-policy')?.severity, 'warning');
});

test('an unreachable Redis is a clear error with a non-zero exit and no stack trace', async () => {
  const port = await freePort();
  const r = await zeroloss(['doctor', '--redis', `redis://:hunter2@127.0.0.1:${port}`]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    new RegExp(`ZL_TRANSPORT_UNAVAILABLE: cannot check Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}.*ECONNREFUSED`),
  );
  assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at |hunter2/);
});

test('a password in the URL is never printed, whether it is right or wrong', async () => {
  const redis = await redisWith({ ...DURABLE, requirepass: 'secret' });
  assert.match(redis.url, /secret/);
  const text = await zeroloss(['doctor', '--redis', redis.url]);
  const json = await zeroloss(['doctor', '--redis', redis.url, '--json']);
  assert.equal(text.code, 0, text.stdout + text.stderr);
  assert.equal(json.code, 0, json.stdout + json.stderr);
  const wrong = await zeroloss(['doctor', '--redis', `redis://:not-the-secret@127.0.0.1:${redis.port}`]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /cannot check Redis at redis:\/\/:\*\*\*@/);
  const none = await zeroloss(['doctor', '--redis', `redis://127.0.0.1:${redis.port}`]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /NOAUTH/);
  for (const r of [text, json, wrong, none]) assert.doesNotMatch(r.stdout + r.stderr, /secret/);
});

test('a stream trimmed below what a group acknowledged passes; entries a group had pending or not read fail', async () => {
  const redis = await redisWith(DURABLE);
  const admin = new RedisStreamsAdmin({ url: redis.url, prefix: 'shop' });
  const client = new Redis(redis.url);
  try {
    await admin.createTopic('orders', 2);
    const stream = 'shop:stream:orders:0';
    for (let i = 0; i < 5; i++) await client.call('XADD', stream, '0-*', 'n', String(i));
    await client.call('XGROUP', 'CREATE', stream, 'billing', '0');
    await client.call('XGROUP', 'CREATE', stream, 'shipping', '0');
    await client.call('XREADGROUP', 'GROUP', 'billing', 'b1', 'COUNT', '3', 'STREAMS', stream, '>');
    await client.call('XACK', stream, 'billing', '0-1', '0-2', '0-3');
    await client.call('XREADGROUP', 'GROUP', 'shipping', 's1', 'COUNT', '5', 'STREAMS', stream, '>');
    await client.call('XACK', stream, 'shipping', '0-1', '0-2', '0-3');
    const doctor = (...more: string[]) => zerolossJson<Report>(['doctor', '--redis', redis.url, '--redis-prefix', 'shop', ...more]);

    const clean = await doctor();
    assert.equal(clean.code, 0, JSON.stringify(clean.json));
    await client.call('XTRIM', stream, 'MAXLEN', '2');
    const trimmedAcked = await doctor();
    assert.equal(trimmedAcked.code, 0, JSON.stringify(trimmedAcked.json));
    assert.equal(trimmedAcked.json.findings.find((f) => f.subject === `stream:${stream}`)?.severity, 'info');

    // Redis 7.0 records no id for what XTRIM removed: the transport's dense ids show it.
    await client.call('XTRIM', stream, 'MAXLEN', '1');
    const unreadGone = await doctor('--topic', 'orders');
    assert.equal(unreadGone.code, 1);
    assert.deepEqual(errors(unreadGone.json).sort(), [`group:${stream}/billing deleted-up-to`, `group:${stream}/shipping pending`]);

    const other = 'shop:stream:orders:1';
    for (let i = 0; i < 3; i++) await client.call('XADD', other, '0-*', 'n', String(i));
    await client.call('XGROUP', 'CREATE', other, 'billing', '0');
    await client.call('XREADGROUP', 'GROUP', 'billing', 'b1', 'COUNT', '1', 'STREAMS', other, '>');
    await client.call('XACK', other, 'billing', '0-1');
    await client.call('XDEL', other, '0-3');
    const deleted = await doctor('--topic', 'orders');
    assert.ok(errors(deleted.json).includes(`group:${other}/billing deleted-up-to`), JSON.stringify(deleted.json));

    const missing = await doctor('--topic', 'refunds');
    assert.equal(missing.code, 0);
    assert.equal(missing.json.findings.find((f) => f.subject === 'topic:refunds')?.severity, 'warning');
  } finally {
    client.disconnect();
    await admin.close();
  }
});
