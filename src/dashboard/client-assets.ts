import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/**
 * What the browser loads: uPlot from the installed package (no CDN: the dashboard works offline), and the
 * dashboard's own small script and style, kept here as text so the built package needs no asset copying.
 */
export function loadAssets(): Map<string, { type: string; body: string }> {
  const require = createRequire(import.meta.url);
  const file = (path: string) => readFileSync(require.resolve(path), 'utf8');
  return new Map([
    ['/assets/uPlot.iife.min.js', { type: 'text/javascript; charset=utf-8', body: file('uplot/dist/uPlot.iife.min.js') }],
    ['/assets/uPlot.min.css', { type: 'text/css; charset=utf-8', body: file('uplot/dist/uPlot.min.css') }],
    ['/assets/dashboard.js', { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS }],
    ['/assets/dashboard.css', { type: 'text/css; charset=utf-8', body: DASHBOARD_CSS }],
  ]);
}

// Actions: a POST with a JSON body and the page's CSRF token in a header (see dashboard-security.ts); the
// answer is shown in #result. Charts: /api/series, redrawn every 10 s.
const DASHBOARD_JS = `'use strict';
(() => {
  const csrf = document.querySelector('meta[name="zeroloss-csrf"]').content;
  const result = () => document.getElementById('result');
  const show = (ok, text) => {
    const out = result();
    if (!out) return;
    out.className = ok ? 'ok' : 'failed';
    out.textContent = text;
  };
  async function act(action, payload) {
    const res = await fetch('/actions/' + action, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-zeroloss-csrf': csrf },
      body: JSON.stringify(payload),
    });
    let body;
    try { body = await res.json(); } catch { body = { error: res.status + ' ' + res.statusText }; }
    return { ok: res.ok && body.ok !== false, body };
  }
  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const reason = (document.getElementById('reason') || {}).value || '';
    if (reason.trim() === '') { show(false, 'Give a reason first: it goes to the audit.'); return; }
    button.disabled = true;
    const { ok, body } = await act(button.dataset.action, { ids: button.dataset.ids.split(','), reason });
    show(ok, ok ? button.dataset.action + ': ' + JSON.stringify(body.result) : 'Failed: ' + (body.error || JSON.stringify(body.result)));
    if (!ok) button.disabled = false;
    else { const row = button.closest('tr'); if (row) row.classList.add('done'); }
  });
  document.addEventListener('submit', async (event) => {
    const form = event.target.closest('form[data-action]');
    if (!form) return;
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    data.reason = (document.getElementById('reason') || {}).value || '';
    if ('repair' in data) data.repair = true;
    const button = form.querySelector('button');
    button.disabled = true;
    const { ok, body } = await act(form.dataset.action, data);
    button.disabled = false;
    const r = body.result || {};
    const counts = r.counts ? Object.entries(r.counts).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n).join(', ') : '';
    const resent = Array.isArray(r.resent) ? ': resent ' + r.resent.length + ' of ' + r.selected + (r.failed.length ? ', FAILED ' + r.failed.length : '') : '';
    show(ok, ok ? form.dataset.action + ' done' + (r.verdict ? ': verdict ' + r.verdict + (counts ? ' (' + counts + ')' : '') : resent) : 'Failed: ' + body.error);
    const report = document.getElementById('report');
    if (report) report.textContent = JSON.stringify(body.result ?? body, null, 2);
  });

  const charts = document.getElementById('charts');
  if (!charts || typeof uPlot === 'undefined') return;
  const plots = [];
  const width = () => Math.max(300, Math.min(560, charts.clientWidth / 3 - 24));
  const specs = [
    ['chart-throughput', [['sent/s', '#2a7'], ['send failures/s', '#c33'], ['applied/s', '#36c']], (p) => [p.sentPerSecond, p.failedPerSecond, p.appliedPerSecond]],
    ['chart-latency', [['p50 ms', '#36c'], ['p99 ms', '#c63']], (p) => [p.p50Ms, p.p99Ms]],
    ['chart-lag', [['lag', '#a3a'], ['unsent', '#c93']], (p) => [p.lag, p.unsent]],
  ];
  async function draw() {
    const res = await fetch('/api/series');
    if (!res.ok) return;
    const { points } = await res.json();
    const xs = points.map((p) => p.t / 1000);
    specs.forEach(([id, series, pick], i) => {
      const columns = series.map((_, j) => points.map((p) => pick(p)[j]));
      const data = [xs, ...columns];
      if (plots[i]) { plots[i].setData(data); return; }
      plots[i] = new uPlot({
        width: width(), height: 200,
        series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: false }))],
        axes: [{}, { size: 50 }],
      }, data, document.getElementById(id));
    });
    charts.dataset.points = String(points.length);
  }
  draw();
  setInterval(draw, 10000);
})();
`;

const DASHBOARD_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { display: flex; gap: 1.2em; align-items: center; padding: .6em 1em; background: #1f2933; color: #eee; flex-wrap: wrap; }
header a { color: #9cf; text-decoration: none; margin-right: .8em; }
header .source { margin-left: auto; font-size: 12px; color: #bbb; }
header .search input { width: 16em; }
main { padding: 0 1em 2em; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 1.4em; }
table { border-collapse: collapse; background: #fff; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; font-size: 13px; }
th { background: #eef1f4; }
tr.done { opacity: .5; }
.figures { display: flex; flex-wrap: wrap; gap: .6em; }
.figure { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: .5em .8em; min-width: 8em; }
.figure .label { display: block; font-size: 12px; color: #666; }
.figure .value { font-size: 22px; font-weight: 600; }
.figure.alarm { border-color: #c33; } .figure.alarm .value { color: #c33; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.charts > div { background: #fff; border: 1px solid #ddd; padding: .3em; }
.charts h2 { margin: .2em; font-size: 14px; }
.note { color: #666; font-size: 12px; width: 100%; }
.error, .failed, .warnings { color: #b00; }
.ok { color: #171; }
.filters { display: flex; flex-wrap: wrap; gap: .8em; align-items: end; margin: .6em 0; }
.filters h2 { width: 100%; margin: .4em 0 0; }
.actions { margin: .6em 0; display: flex; gap: 1em; align-items: center; }
.timeline { border-left: 3px solid #36c; padding-left: 1em; list-style: none; }
.timeline li { margin: .3em 0; }
.timeline .stage { display: inline-block; min-width: 6em; font-weight: 600; }
.timeline time { color: #666; font-family: monospace; }
.stop { padding: .5em; background: #fff; border: 1px solid #ddd; }
.stop.stage-complete { border-color: #2a7; }
dl.detail { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dl.detail dt { font-weight: 600; } dl.detail dd { margin: 0; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; }
`;
