import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { type Dashboard, startDashboard } from '../../../src/dashboard/start-dashboard.ts';
import { type Consumer, createConsumer, createOutbox, createRelay, PermanentError } from '../../../src/index.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const ARTIFACTS = fileURLToPath(new URL('../../../.artifacts/dashboard/', import.meta.url));
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The dashboard in real headless Chromium, on a schema with sent, applied, parked and dead-lettered
 * messages (Postgres and the table log; no Kafka): the overview's figures against SQL counts, filtering
 * dead letters, a message's trail, replaying a dead letter (applied once, audited) and releasing a parked row.
 * Screenshots of each page go to .artifacts/dashboard/.
 */
describe('dashboard in a browser', () => {
  const schema = uniqueName('zldash');
  const s = `"${schema}"`;
  const store = postgres(PG_URL, { schema, max: 6 });
  const transport = tableLog(store, { subscriber: { pollIntervalMs: 100, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 } });
  const group = 'points';
  const fixed = new Set<string>();
  const profile = mkdtempSync(join(tmpdir(), 'zl-chromium-'));
  let consumer: Consumer;
  let board: Dashboard;
  let browser: BrowserContext;
  let page: Page;
  const ids = { applied: [] as string[], dead: [] as string[], parked: [] as string[] };
  const count = async (sql: string, params: unknown[] = []) =>
    (await store.db.query<{ n: number }>(`select count(*)::int as n from ${sql}`, params)).rows[0]?.n ?? -1;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await store.migrate();
    await transport.ensureTopic('orders', 2);
    await transport.ensureTopic('orders.dlq', 1);
    await store.db.query(`create table ${s}.effect (id text primary key, n int not null)`);
    const outbox = createOutbox({ store, producerId: 'dash-test' });
    await store.transaction(async (tx) => {
      for (let n = 0; n < 6; n++) {
        const m = await outbox.enqueue(tx, { topic: 'orders', key: `u${n % 3}`, type: n < 4 ? 'credit' : 'bad-credit', payload: { n } });
        (n < 4 ? ids.applied : ids.dead).push(m.id);
      }
    });
    const relay = createRelay({ store, transport });
    await relay.start();
    consumer = createConsumer({ store, transport, groupId: group, topics: ['orders'] });
    const apply = async (m: { id: string; payload: { n: number } }, tx: { query: (q: string, p: unknown[]) => Promise<unknown> }) => {
      await tx.query(`insert into ${s}.effect (id, n) values ($1, $2)`, [m.id, m.payload.n]);
    };
    consumer.handle<{ n: number }>('credit', (m, ctx) => apply(m, ctx.tx));
    // Refused for good until the test "fixes" it, then applied when replayed.
    consumer.handle<{ n: number }>('bad-credit', async (m, ctx) => {
      if (!fixed.has(m.id)) throw new PermanentError('account closed');
      await apply(m, ctx.tx);
    });
    await consumer.start();
    await waitFor(async () => (await count(`${s}.effect`)) === 4 && (await count(`${s}.dead_letter where status = 'dead'`)) === 2, {
      what: 'four applied and two dead-lettered',
    });
    await waitFor(async () => (await count(`${s}.outbox where state <> 1`)) === 0, { what: 'all six marked sent' });
    await relay.stop();
    // Two rows the relay gave up on (the relay is stopped, so they stay parked), and a dead letter of another group.
    await store.transaction(async (tx) => {
      for (let n = 0; n < 2; n++)
        ids.parked.push((await outbox.enqueue(tx, { topic: 'orders', key: 'p', type: 'credit', payload: { n: 10 + n } })).id);
    });
    await store.db.query(`update ${s}.outbox set state = 3, attempts = 10, last_error = 'TOPIC_AUTHORIZATION_FAILED' where state = 0`);
    await store.deadLetters.record({
      groupId: 'billing',
      idempotencyKey: 'billing-1',
      messageId: ids.applied[0],
      topic: 'orders',
      partition: 0,
      offset: 0n,
      key: 'u0',
      type: 'credit',
      headers: {},
      payload: Buffer.from('{"n":0,"card":"4111"}'),
      errorCode: 'ZL_PERMANENT',
      error: 'billing refused',
      stack: undefined,
      attempts: 1,
      firstFailureAt: new Date(),
      lastFailureAt: new Date(),
    });
    board = await startDashboard(
      {
        schema,
        store: store.operations,
        deadLetters: store.deadLetters,
        broker: transport.inspector,
        publisher: () => transport.publisher,
        source: PG_URL,
      },
      { port: 0, sampleEveryMs: 300, commitDelayMs: 1_000, redactFields: ['card'] },
    );
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1400, height: 1000 },
    });
    page = await browser.newPage();
  });

  after(async () => {
    await browser?.close();
    await board?.close();
    await consumer?.stop();
    await transport.close();
    await store.db.query(`drop schema if exists ${s} cascade`).catch(() => {});
    await store.close();
    rmSync(profile, { recursive: true, force: true });
  });

  // Full page only where the page runs long (overview, message trails); lists fit the viewport.
  const shot = (name: string, fullPage = false) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });
  const figure = async (name: string) => (await page.locator(`[data-figure="${name}"]`).textContent())?.trim();

  test('overview: figures equal the SQL counts, plots drawn with uPlot', async () => {
    await waitFor(
      async () => {
        const r = await fetch(`${board.url}/api/series`);
        return ((await r.json()) as { points: unknown[] }).points.length >= 2;
      },
      { what: 'two plot points' },
    );
    await page.goto(`${board.url}/`);
    assert.equal(await figure('pending'), String(await count(`${s}.outbox where state = 0`)));
    assert.equal(await figure('failed'), String(await count(`${s}.outbox where state = 2`)));
    assert.equal(await figure('parked'), String(await count(`${s}.outbox where state = 3`)));
    assert.equal(await figure('parked'), '2');
    assert.equal(await figure('dead-letters'), String(await count(`${s}.dead_letter where status = 'dead'`)));
    assert.equal(await figure('dead-letters'), '3');
    assert.equal(await page.locator(`#groups tr[data-group="${group}"]`).count(), 2, 'one row per partition of orders');
    await page.waitForSelector('#chart-throughput canvas');
    assert.equal(await page.locator('.uplot').count(), 3);
    await shot('overview', true);
  });

  test('dead letters: filter by group and status, open one (payload redacted)', async () => {
    await page.goto(`${board.url}/dead-letters`);
    assert.equal(await page.locator('#dead-letters tbody tr').count(), 3);
    await page.fill('input[name="group"]', group);
    await page.click('form.filters button');
    await page.waitForURL(/group=points/);
    const rows = page.locator('#dead-letters tbody tr');
    assert.equal(await rows.count(), await count(`${s}.dead_letter where consumer_group = $1 and status = 'dead'`, [group]));
    assert.equal(await rows.count(), 2);
    await shot('dead-letters-filtered');
    await page.goto(`${board.url}/dead-letters?group=billing`);
    await page.click('#dead-letters tbody tr a');
    const payload = await page.locator('[data-payload]').textContent();
    assert.match(payload ?? '', /"card":"\[redacted\]"/);
    assert.doesNotMatch(payload ?? '', /4111/);
    await shot('dead-letter-detail');
  });

  test('message page: the whole trail of an applied and of a dead-lettered message', async () => {
    await page.goto(`${board.url}/`);
    await page.fill('header input[name="id"]', ids.applied[1] as string);
    await page.click('header form.search button');
    await page.waitForURL(new RegExp(`/messages/${ids.applied[1]}`));
    assert.equal(await page.locator('[data-stop]').getAttribute('data-stop'), 'complete');
    const steps = await page.locator('#timeline li .stage').allTextContents();
    assert.ok(steps.includes('outbox') && steps.includes('relay') && steps.includes('consumer'), steps.join(','));
    assert.equal(await page.locator(`#message-groups tr[data-group="${group}"]`).getAttribute('data-status'), 'applied');
    assert.match((await page.locator('#broker').textContent()) ?? '', /found/);
    await shot('message-applied', true);
    await page.goto(`${board.url}/messages/${ids.dead[0]}`);
    assert.equal(await page.locator(`#message-groups tr[data-group="${group}"]`).getAttribute('data-status'), 'dead-lettered');
    await shot('message-dead-lettered', true);
  });

  test('replay a dead letter: applied once, audited with the reason', async () => {
    const target = ids.dead[0] as string;
    const dl = (await store.db.query<{ id: string }>(`select id::text from ${s}.dead_letter where message_id = $1`, [target])).rows[0]?.id;
    fixed.add(target);
    await page.goto(`${board.url}/dead-letters?group=${group}`);
    await page.click(`#dead-letters tr[data-id="${dl}"] button[data-action="dead-letters/replay"]`);
    assert.match((await page.locator('#result').textContent()) ?? '', /reason/i, 'no reason, no action');
    await page.fill('#reason', 'account reopened');
    await page.click(`#dead-letters tr[data-id="${dl}"] button[data-action="dead-letters/replay"]`);
    await page.waitForSelector('#result.ok');
    await waitFor(async () => (await count(`${s}.effect where id = $1`, [target])) === 1, { what: 'the replayed message applied' });
    assert.equal(await count(`${s}.inbox where message_id = $1 and consumer_group = $2`, [target, group]), 1);
    // A second replay is accepted (a replay is always safe): the consumers' inboxes make it a skipped duplicate.
    const csrf = (await page.locator('meta[name="zeroloss-csrf"]').getAttribute('content')) ?? '';
    const again = await (
      await fetch(`${board.url}/actions/dead-letters/replay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-zeroloss-csrf': csrf },
        body: JSON.stringify({ ids: [dl], reason: 'twice' }),
      })
    ).json();
    assert.equal((again as { ok: boolean }).ok, true);
    await waitFor(
      async () => {
        const overview = (await (await fetch(`${board.url}/api/overview`)).json()) as { groups: Array<{ group: string; lag: string }> };
        return overview.groups.find((g) => g.group === group)?.lag === '0';
      },
      { what: 'the group consumed the second replay' },
    );
    assert.equal(await count(`${s}.dead_letter where message_id = $1 and replay_count = 2`, [target]), 1);
    // The plots saw the replayed effect: a point with an applied rate and its end-to-end latency.
    const point = await waitFor(
      async () => {
        const r = (await (await fetch(`${board.url}/api/series`)).json()) as {
          points: Array<{ appliedPerSecond: number; p50Ms: number | null; p99Ms: number | null }>;
        };
        return r.points.find((p) => p.appliedPerSecond > 0 && p.p50Ms !== null);
      },
      { what: 'a plot point with the replayed effect' },
    );
    assert.ok((point.p99Ms ?? 0) >= (point.p50Ms ?? 0) && (point.p50Ms ?? 0) > 0, JSON.stringify(point));
    assert.equal(await count(`${s}.effect where id = $1`, [target]), 1, 'applied once');
    assert.equal(await count(`${s}.inbox where message_id = $1`, [target]), 1);
    const audit = await store.db.query(
      `select actor, action, reason, message_id from ${s}.operation_audit where action = 'dead-letter.replay' order by id`,
    );
    assert.deepEqual(audit.rows, [
      { actor: 'dashboard:local', action: 'dead-letter.replay', reason: 'account reopened', message_id: target },
      { actor: 'dashboard:local', action: 'dead-letter.replay', reason: 'twice', message_id: target },
    ]);
    await shot('dead-letter-replayed');
    await page.goto(`${board.url}/messages/${target}`);
    assert.equal(await page.locator(`#message-groups tr[data-group="${group}"]`).getAttribute('data-status'), 'applied');
    assert.match((await page.locator('#message-audit').textContent()) ?? '', /dead-letter\.replay.*account reopened/);
    await shot('message-replayed', true);
  });

  test('release a parked row: pending again, audited; the audit page shows it', async () => {
    const target = ids.parked[0] as string;
    await page.goto(`${board.url}/parked`);
    assert.equal(await page.locator('#parked tbody tr').count(), 2);
    await page.fill('#reason', 'ACL fixed');
    await page.click(`#parked tr[data-id="${target}"] button[data-action="parked/release"]`);
    await page.waitForSelector('#result.ok');
    const row = (await store.db.query(`select state, attempts from ${s}.outbox where message_id = $1`, [target])).rows[0];
    assert.deepEqual(row, { state: 0, attempts: 0 });
    await shot('parked-released');
    await page.goto(`${board.url}/audit`);
    assert.equal(await page.locator('#audit tr[data-action="outbox.release"]').count(), 1);
    assert.match((await page.locator('#audit tr[data-action="outbox.release"]').textContent()) ?? '', /dashboard:local.*ACL fixed/s);
    await shot('audit');
  });

  test("inboxes: a group's rows paged newest first, each once", async () => {
    await page.goto(`${board.url}/inboxes?group=${group}&limit=3`);
    const seen: string[] = [];
    for (;;) {
      seen.push(...(await page.locator('#inboxes tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') ?? ''))));
      if ((await page.locator('a[rel="next"]').count()) === 0) break;
      await page.click('a[rel="next"]');
    }
    const expected = (
      await store.db.query<{ message_id: string }>(
        `select message_id from ${s}.inbox where consumer_group = $1 order by processed_at desc`,
        [group],
      )
    ).rows.map((r) => r.message_id);
    assert.equal(expected.length, 5, 'four applied and the replayed one');
    assert.deepEqual([...seen].sort(), [...expected].sort());
    await shot('inboxes');
  });

  test('outbox list by state, paged', async () => {
    await page.goto(`${board.url}/outbox?state=parked`);
    assert.deepEqual(await page.locator('#outbox tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id'))), [
      ids.parked[1],
    ]);
    // Six sent rows committed in one transaction share created_at: pages of three must still be disjoint.
    const idsOn = () => page.locator('#outbox tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') ?? ''));
    await page.goto(`${board.url}/outbox?state=sent&limit=4`);
    const first = await idsOn();
    await page.click('a[rel="next"]');
    const second = await idsOn();
    assert.equal(first.length, 4);
    assert.deepEqual([...first, ...second].sort(), [...ids.applied, ...ids.dead].sort(), 'each sent row once, over two pages');
    assert.equal(await page.locator('a[rel="next"]').count(), 0, 'the second page is the last');
    await shot('outbox');
  });
});
