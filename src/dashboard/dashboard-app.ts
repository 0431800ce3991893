import { type Context, Hono } from 'hono';
import type { Registry } from 'prom-client';
import { errorSummary, ZerolossError } from '../core/errors.ts';
import { status } from '../operations/status.ts';
import { trace } from '../operations/trace.ts';
import type { OperationsStore } from '../ports/backends.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { DeadLetterQueue } from '../ports/dead-letter-store.ts';
import type { MessageState } from '../ports/outbox-store.ts';
import type { ReadinessCheck } from '../ports/readiness.ts';
import type { Publisher } from '../ports/transport.ts';
import { loadAssets } from './client-assets.ts';
import * as input from './dashboard-input.ts';
import { mountActions } from './dashboard-actions.ts';
import { authenticate } from './dashboard-security.ts';
import { type Redaction, safeUrl } from './payload-redaction.ts';
import { deadLetterPage, deadLettersPage } from './pages/dead-letters-page.ts';
import { inboxesPage } from './pages/inboxes-page.ts';
import { errorPage, layout, type PageContext } from './pages/layout.ts';
import { auditPage, messagePage } from './pages/message-page.ts';
import { outboxPage } from './pages/outbox-page.ts';
import { overviewPage } from './pages/overview-page.ts';
import { parkedPage } from './pages/parked-page.ts';
import { reconcilePage } from './pages/reconcile-page.ts';
import type { SeriesRecorder } from './series-recorder.ts';

/** What the dashboard reads and acts through: the operations layer's ports, nothing of its own. */
export interface DashboardDeps {
  schema: string;
  store: OperationsStore;
  deadLetters: DeadLetterQueue;
  /** The broker to read (trace, status, reconcile); undefined when it cannot be read. */
  broker?: BrokerInspector;
  brokerNotRead?: string;
  /** For replays, resends and repairs; without one those actions answer 409. */
  publisher?: () => Publisher;
  /** /readyz conditions (e.g. the database answers). */
  checks?: Record<string, ReadinessCheck>;
  /** Served at /metrics when given. */
  registry?: Registry;
  /** Shown in the header, password masked. */
  source?: string;
}

export interface DashboardAppOptions {
  token: string | undefined;
  csrf: string;
  redaction: Redaction;
  groups?: string[];
  series: SeriesRecorder;
  everyMs: number;
  /** Logs a failure; the answer only says "internal error". */
  log: (line: string) => void;
}

export type DashboardEnv = { Variables: { user: string } };
type Env = DashboardEnv;
export type SendJson = (c: Context<Env>, status: 200 | 400 | 404 | 409 | 500, value: unknown) => Response;

const STATES: Record<(typeof input.OUTBOX_STATES)[number], MessageState> = { pending: 0, sent: 1, failed: 2, parked: 3 };

/** The routes: tokenless probes, authenticated pages and JSON, and POST-only actions behind the CSRF check. */
export function dashboardApp(deps: DashboardDeps, options: DashboardAppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const assets = loadAssets();
  const page = (c: Context<Env>): PageContext => ({
    csrf: options.csrf,
    schema: deps.schema,
    source: safeUrl(deps.source ?? 'postgres'),
    user: c.get('user') ?? 'local',
  });
  const send: SendJson = (c, status, value) =>
    c.body(
      JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
      status,
      {
        'content-type': 'application/json; charset=utf-8',
      },
    );

  app.use('*', async (c, next) => {
    await next();
    c.header('cache-control', 'no-store');
    c.header('x-content-type-options', 'nosniff');
    c.header('x-frame-options', 'DENY');
    c.header('referrer-policy', 'no-referrer');
    c.header(
      'content-security-policy',
      "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    );
  });
  app.use('*', authenticate(options.token));

  app.onError((error, c) => {
    const wantsJson = c.req.path.startsWith('/api/') || c.req.path.startsWith('/actions/');
    if (error instanceof ZerolossError && error.code === 'ZL_INVALID_CONFIG') {
      const field = error instanceof input.BadInput ? error.field : undefined;
      return wantsJson ? send(c, 400, { ok: false, error: error.message, field }) : c.html(errorPage(page(c), 400, error.message), 400);
    }
    options.log(`dashboard: ${c.req.method} ${c.req.path}: ${safeUrl(errorSummary(error, 500))}`);
    const text = 'internal error (the server log says more)';
    return wantsJson ? send(c, 500, { ok: false, error: text }) : c.html(errorPage(page(c), 500, text), 500);
  });
  app.notFound((c) => c.text('404: no such page', 404));

  // ---- probes ----------------------------------------------------------------------------------
  app.get('/healthz', (c) => c.json({ alive: true }));
  app.get('/readyz', async (c) => {
    const results: Record<string, { ok: boolean; detail?: string }> = {};
    for (const [name, check] of Object.entries(deps.checks ?? {})) {
      results[name] = await Promise.race([
        Promise.resolve()
          .then(check)
          .catch((e: unknown) => ({ ok: false, detail: safeUrl(errorSummary(e, 200)) })),
        new Promise<{ ok: boolean; detail: string }>((r) =>
          setTimeout(() => r({ ok: false, detail: 'no answer within 2000 ms' }), 2_000).unref(),
        ),
      ]);
    }
    const ready = Object.values(results).every((r) => r.ok);
    return c.json({ ready, checks: results }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    if (!deps.registry) return c.text('no metrics here: zeroloss serve has them', 404);
    return c.body(await deps.registry.metrics(), 200, { 'content-type': deps.registry.contentType });
  });
  app.get('/assets/:file', (c) => {
    const asset = assets.get(c.req.path);
    if (!asset) return c.text('404', 404);
    return c.body(asset.body, 200, { 'content-type': asset.type });
  });

  // ---- pages and their JSON ---------------------------------------------------------------------
  const overview = () => status({ store: deps.store, broker: deps.broker }, { groups: options.groups, parkedLimit: 20 });
  app.get('/', async (c) => {
    const s = await overview();
    const latest = options.series.points().at(-1);
    return c.html(layout(page(c), 'Overview', overviewPage(s, latest, options.series.lastError), { charts: true }));
  });
  app.get('/api/overview', async (c) => send(c, 200, await overview()));
  app.get('/api/series', (c) => send(c, 200, { everyMs: options.everyMs, points: options.series.points() }));

  app.get('/dead-letters', async (c) => {
    const q = c.req.query();
    const status = input.oneOf(q.status || 'dead', input.DEAD_LETTER_STATUSES, 'status');
    const f = {
      status,
      topic: input.optional(q.topic, (v) => input.topic(v)),
      group: input.optional(q.group, (v) => input.name(v, 'group')),
      limit: input.limit(q.limit, 50),
      before: input.optional(q.before, (v) => input.rowId(v, 'before')),
    };
    const rows = await deps.deadLetters.list({
      status: status === 'all' ? undefined : status,
      topic: f.topic,
      groupId: f.group,
      limit: f.limit,
      before: f.before,
    });
    if (c.req.header('accept')?.includes('application/json')) return send(c, 200, rows);
    return c.html(layout(page(c), 'Dead letters', deadLettersPage(rows, f)));
  });
  app.get('/dead-letters/:id', async (c) => {
    const id = input.rowId(c.req.param('id'));
    const d = await deps.deadLetters.get(id);
    if (!d) return c.html(errorPage(page(c), 404, `no dead letter ${id}`), 404);
    return c.html(layout(page(c), `Dead letter ${id}`, deadLetterPage(d, options.redaction)));
  });

  app.get('/parked', async (c) => {
    const q = c.req.query();
    const f = { topic: input.optional(q.topic, (v) => input.topic(v)), limit: input.limit(q.limit, 100) };
    const rows = await deps.store.parkedRows(f.limit, f.topic);
    return c.html(layout(page(c), 'Parked outbox rows', parkedPage(rows, f)));
  });

  app.get('/outbox', async (c) => {
    const q = c.req.query();
    const window = input.window(q.from, q.to, '1h');
    const state = input.optional(q.state, (v) => input.oneOf(v, input.OUTBOX_STATES, 'state'));
    const f = {
      state,
      topic: input.optional(q.topic, (v) => input.topic(v)),
      key: input.optional(q.key, (v) => input.name(v, 'key')),
      limit: input.limit(q.limit, 100),
    };
    const after = input.optional(q.after, input.outboxCursor);
    const rows = await deps.store.outboxRows(
      { window, topic: f.topic, state: state === undefined ? undefined : STATES[state], key: f.key },
      after,
      f.limit,
    );
    const last = rows.length === f.limit ? rows[rows.length - 1]?.cursor : undefined;
    const shown = { ...f, from: q.from || window.from.toISOString(), to: q.to || window.to.toISOString() };
    return c.html(layout(page(c), 'Outbox', outboxPage(rows, last ? input.encodeCursor(last) : undefined, shown)));
  });

  app.get('/inboxes', async (c) => {
    const q = c.req.query();
    const window = input.window(q.from, q.to, '1h');
    const f = {
      group: input.optional(q.group, (v) => input.name(v, 'group')),
      topic: input.optional(q.topic, (v) => input.topic(v)),
      limit: input.limit(q.limit, 100),
    };
    const before = input.optional(q.before, input.inboxCursor);
    const rows = await deps.store.inboxRows({ window, groupId: f.group, topic: f.topic }, before, f.limit);
    const last = rows.length === f.limit ? rows[rows.length - 1]?.cursor : undefined;
    const next = last ? input.encodeCursor(last) : undefined;
    const shown = { ...f, from: q.from || window.from.toISOString(), to: q.to || window.to.toISOString() };
    return c.html(layout(page(c), 'Inboxes', inboxesPage(rows, next, shown)));
  });

  app.get('/messages', (c) => {
    const id = input.messageId(c.req.query('id'));
    return c.redirect(`/messages/${encodeURIComponent(id)}`, 303);
  });
  app.get('/messages/:id', async (c) => {
    const id = input.messageId(c.req.param('id'));
    const t = await trace({ store: deps.store, broker: deps.broker }, id, { groups: options.groups });
    if (c.req.header('accept')?.includes('application/json')) return send(c, 200, t);
    return c.html(layout(page(c), `Message ${id}`, messagePage(t, options.redaction)));
  });

  app.get('/audit', async (c) => {
    const since = c.req.query('since') || '24h';
    const from = input.time(since, 'since', new Date());
    const sinceMs = Date.now() - from.getTime();
    if (sinceMs <= 0 || sinceMs > 31 * 86_400_000) throw new input.BadInput('since', 'must be in the last 31 days');
    const entries = await deps.store.recentAudit(sinceMs, 500);
    return c.html(layout(page(c), 'Audit', auditPage(entries, since)));
  });

  app.get('/reconcile', async (c) => {
    const runs = await deps.store.lastRuns(20);
    return c.html(layout(page(c), 'Reconcile and resend', reconcilePage(runs, deps.publisher !== undefined)));
  });

  mountActions(app, deps, options, send);
  return app;
}
