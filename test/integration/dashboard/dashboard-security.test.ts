import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { createOutbox } from '../../../src/index.ts';
import { type Dashboard, startDashboard } from '../../../src/dashboard/start-dashboard.ts';
import { KAFKA_BROKERS } from '../../helpers/kafka.ts';
import { zeroloss } from '../../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const TOKEN = 'test-token-0123456789abcdef';

/** The dashboard's guards: bind refusal, token on every page and action, POST-only CSRF-checked actions, 400s. */
describe('dashboard security', () => {
  const schema = uniqueName('zldsec');
  const store = postgres(PG_URL, { schema, max: 4 });
  const transport = tableLog(store);
  const logged: string[] = [];
  let board: Dashboard;
  let base: string;
  let parkedId: string;
  const s = `"${schema}"`;
  const deps = () => ({
    schema,
    store: store.operations,
    deadLetters: store.deadLetters,
    broker: transport.inspector,
    publisher: () => transport.publisher,
  });

  before(async () => {
    await store.migrate();
    await transport.ensureTopic('orders', 1);
    const outbox = createOutbox({ store, producerId: 'sec' });
    parkedId = (await store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'k', type: 't', payload: { n: 1 } }))).id;
    await store.db.query(`update ${s}.outbox set state = 3, attempts = 9 where message_id = $1`, [parkedId]);
    // 0.0.0.0 with a token; the tests call it on 127.0.0.1.
    board = await startDashboard(deps(), { host: '0.0.0.0', port: 0, token: TOKEN, log: (l) => logged.push(l), sampleEveryMs: 60_000 });
    base = `http://127.0.0.1:${board.port}`;
  });
  after(async () => {
    await board?.close();
    await transport.close();
    await store.db.query(`drop schema if exists ${s} cascade`).catch(() => {});
    await store.close();
  });

  const bearer = { authorization: `Bearer ${TOKEN}` };
  const csrfOf = async () => {
    const page = await (await fetch(`${base}/parked`, { headers: bearer })).text();
    return /name="zeroloss-csrf" content="([^"]+)"/.exec(page)?.[1] as string;
  };
  const stateOf = async (id: string) =>
    (await store.db.query<{ state: number }>(`select state from ${s}.outbox where message_id = $1`, [id])).rows[0]?.state;

  test('a non-loopback bind without a token refuses to start, in the library and in serve', async () => {
    await assert.rejects(startDashboard(deps(), { host: '0.0.0.0', port: 0 }), { code: 'ZL_INVALID_CONFIG', message: /needs a token/ });
    await assert.rejects(startDashboard(deps(), { host: '0.0.0.0', port: 0, token: 'short' }), /at least 16 characters/);
    const cli = await zeroloss(['serve', '--dashboard', '--host', '0.0.0.0', '--pg', PG_URL, '--kafka', '127.0.0.1:1']);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /needs a token/);
  });

  test('every page, API and action needs the token; the probes do not', async () => {
    for (const path of [
      '/',
      '/api/overview',
      '/api/series',
      '/dead-letters',
      '/parked',
      '/outbox',
      `/messages/${parkedId}`,
      '/audit',
      '/reconcile',
    ]) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      assert.match(res.headers.get('www-authenticate') ?? '', /Basic/);
      assert.equal((await fetch(`${base}${path}`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401, path);
    }
    const post = await fetch(`${base}/actions/parked/release`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ids: [parkedId], reason: 'x' }),
    });
    assert.equal(post.status, 401);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.equal((await fetch(`${base}/`, { headers: bearer })).status, 200);
    const basic = `Basic ${Buffer.from(`alice:${TOKEN}`).toString('base64')}`;
    const page = await fetch(`${base}/parked`, { headers: { authorization: basic } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), new RegExp(parkedId));
    assert.equal(await stateOf(parkedId), 3);
  });

  test('a GET (or a form post, or a cross-origin post) to an action does nothing', async () => {
    const csrf = await csrfOf();
    assert.ok(csrf);
    const get = await fetch(`${base}/actions/parked/release?ids=${parkedId}&reason=x`, { headers: bearer });
    assert.equal(get.status, 405);
    const form = await fetch(`${base}/actions/parked/release`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/x-www-form-urlencoded' },
      body: `ids=${parkedId}&reason=x`,
    });
    assert.equal(form.status, 415);
    const json = { ...bearer, 'content-type': 'application/json' };
    const body = JSON.stringify({ ids: [parkedId], reason: 'x' });
    assert.equal((await fetch(`${base}/actions/parked/release`, { method: 'POST', headers: json, body })).status, 403, 'no CSRF header');
    const foreign = { ...json, 'x-zeroloss-csrf': csrf, origin: 'https://evil.example' };
    assert.equal((await fetch(`${base}/actions/parked/release`, { method: 'POST', headers: foreign, body })).status, 403, 'foreign origin');
    assert.equal(await stateOf(parkedId), 3, 'still parked');
    const audit = await store.db.query(`select 1 from ${s}.operation_audit`);
    assert.equal(audit.rows.length, 0, 'nothing audited');
  });

  test('malformed ids, time ranges, reasons and bodies are a 400 naming the field, never a SQL error', async () => {
    const csrf = await csrfOf();
    const pages: Array<[string, string]> = [
      ['/messages/%01evil', 'id'],
      [`/messages/${'x'.repeat(129)}`, 'id'],
      ['/dead-letters/abc', 'id'],
      ["/dead-letters/1'%20or%201=1", 'id'],
      ['/dead-letters?before=1;drop', 'before'],
      ['/dead-letters?status=gone', 'status'],
      ['/dead-letters?topic=a%20b', 'topic'],
      ['/dead-letters?limit=0', 'limit'],
      ['/outbox?from=yesterday-ish', 'from'],
      ['/outbox?from=now&to=1h', 'from'],
      ['/outbox?from=2020-01-01&to=2021-01-01', 'to'],
      ['/outbox?after=1.x', 'after'],
      ['/outbox?state=lost', 'state'],
      ['/audit?since=99999d', 'since'],
      ['/inboxes?before=garbage', 'before'],
      [
        `/inboxes?before=${Buffer.from(JSON.stringify({ at: '2026-13-45 99:00:00+00', groupId: 'g', idempotencyKey: 'k' })).toString('base64url')}`,
        'before',
      ],
      ['/inboxes?group=%07', 'group'],
    ];
    for (const [path, field] of pages) {
      const res = await fetch(`${base}${path}`, { headers: bearer });
      assert.equal(res.status, 400, path);
      const text = await res.text();
      assert.match(text, new RegExp(field), path);
      assert.doesNotMatch(text, /syntax|SQL|relation|column|invalid input/i, path);
    }
    const post = (action: string, body: string) =>
      fetch(`${base}/actions/${action}`, {
        method: 'POST',
        headers: { ...bearer, 'content-type': 'application/json', 'x-zeroloss-csrf': csrf },
        body,
      });
    const actions: Array<[string, string, string]> = [
      ['parked/release', JSON.stringify({ ids: [parkedId] }), 'reason'],
      ['parked/release', JSON.stringify({ ids: [parkedId], reason: '   ' }), 'reason'],
      ['parked/release', JSON.stringify({ ids: [], reason: 'r' }), 'ids'],
      ['parked/release', JSON.stringify({ ids: ['a\u0000b'], reason: 'r' }), 'ids[0]'],
      ['dead-letters/replay', JSON.stringify({ ids: ['12abc'], reason: 'r' }), 'ids[0]'],
      ['dead-letters/discard', JSON.stringify({ ids: ['-1'], reason: 'r' }), 'ids[0]'],
      ['resend', JSON.stringify({ from: 'garbage', reason: 'r' }), 'from'],
      ['reconcile', JSON.stringify({ from: '2h', to: '3h', reason: 'r' }), 'from'],
      ['reconcile', JSON.stringify({ from: 7, reason: 'r' }), 'from'],
      ['parked/release', '{not json', 'body'],
      ['parked/release', '[1,2]', 'body'],
    ];
    for (const [action, body, field] of actions) {
      const res = await post(action, body);
      assert.equal(res.status, 400, `${action} ${body}`);
      const answer = (await res.json()) as { ok: boolean; field?: string; error: string };
      assert.equal(answer.ok, false);
      assert.equal(answer.field, field, `${action} ${body}: ${answer.error}`);
    }
    assert.equal((await post('nothing/here', '{}')).status, 404);
    assert.equal(await stateOf(parkedId), 3, 'still parked');
    assert.deepEqual(logged, [], 'no request reached an internal error');
  });

  test('serve --dashboard on 0.0.0.0 with --token-file: pages need the token, probes do not, the URL shows no password', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zl-dash-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    const url = PG_URL.replace('postgres@', 'postgres:not-shown@');
    const main = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
    const args = ['serve', '--pg', url, '--schema', schema, '--kafka', KAFKA_BROKERS.join(','), '--http-port', '0'];
    const child = spawn(
      process.execPath,
      [main, ...args, '--dashboard', '--dashboard-port', '0', '--host', '0.0.0.0', '--token-file', join(dir, 'token')],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    try {
      const port = await waitFor(() => /dashboard on http:\/\/0\.0\.0\.0:(\d+)\/ \(token required\)/.exec(stderr)?.[1], {
        what: `serve's dashboard line (stderr so far: ${stderr})`,
      });
      const at = `http://127.0.0.1:${port}`;
      assert.equal((await fetch(`${at}/parked`)).status, 401);
      assert.equal((await fetch(`${at}/healthz`)).status, 200);
      assert.equal((await fetch(`${at}/metrics`)).status, 200);
      const page = await (await fetch(`${at}/`, { headers: bearer })).text();
      assert.match(page, /postgres:\*\*\*@/);
      assert.doesNotMatch(page, /not-shown/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without a token, only loopback: a request naming another host (DNS rebinding) is refused', async () => {
    const local = await startDashboard(deps(), { port: 0, sampleEveryMs: 60_000 });
    try {
      assert.equal(local.host, '127.0.0.1');
      assert.equal((await fetch(`${local.url}/parked`)).status, 200);
      const { request } = await import('node:http');
      const status = await new Promise<number>((resolve, reject) => {
        request(`${local.url}/parked`, { headers: { host: 'rebound.example:80' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(status, 403);
    } finally {
      await local.close();
    }
  });
});
