import type { Status } from '../../operations/status.ts';
import type { SeriesPoint } from '../series-recorder.ts';
import { ageText, html, type Markup } from './html.ts';

function figure(name: string, label: string, value: string | number, alarm = false): Markup {
  return html`<div class="figure${alarm ? ' alarm' : ''}"><span class="label">${label}</span><span class="value" data-figure="${name}">${value}</span></div>`;
}

/** Outbox, groups, dead letters, parked rows, alarms and the last reconciliation, with the last hour's plots. */
export function overviewPage(s: Status, latest: SeriesPoint | undefined, seriesError: string | undefined): Markup {
  const open = s.groups.reduce((n, g) => n + g.openDeadLetters, 0);
  const last = s.lastReconcile[0];
  return html`
<section class="figures">
  ${figure('pending', 'pending', s.outbox.pending)}
  ${figure('failed', 'failed (retrying)', s.outbox.failed, s.outbox.failed > 0)}
  ${figure('parked', 'parked', s.outbox.parked, s.outbox.parked > 0)}
  ${figure('stuck', 'stuck (> 5 min)', s.outbox.stuck, s.outbox.stuck > 0)}
  ${figure('oldest-unsent', 'oldest unsent', s.outbox.pending + s.outbox.failed > 0 ? ageText(s.outbox.oldestUnsentAgeMs) : '–')}
  ${figure('send-rate', 'sent/s', latest ? latest.sentPerSecond : '–')}
  ${figure('send-failures', 'send failures/s', latest ? latest.failedPerSecond : '–', (latest?.failedPerSecond ?? 0) > 0)}
  ${figure('dead-letters', 'open dead letters', open, open > 0)}
  ${figure('alarms', 'sequence alarms (24 h)', s.alarms.length, s.alarms.length > 0)}
  ${figure('held-runs', 'reconciliations held for approval', s.heldRuns.length, s.heldRuns.length > 0)}
  ${figure('reconcile', 'last reconciliation', last ? last.verdict : 'none', last !== undefined && last.verdict !== 'clean' && last.verdict !== 'in-flight')}
</section>
${s.warnings.length > 0 ? html`<ul class="warnings">${s.warnings.map((w) => html`<li>${w}</li>`)}</ul>` : ''}
<section id="charts" class="charts">
  <div><h2>Throughput (per second)</h2><div id="chart-throughput"></div></div>
  <div><h2>End-to-end latency (ms)</h2><div id="chart-latency"></div></div>
  <div><h2>Lag and unsent rows</h2><div id="chart-lag"></div></div>
  <p class="note">Sampled in this process since it started (last hour kept).${seriesError ? html` <span class="error">Last sample failed: ${seriesError}</span>` : ''}</p>
</section>
<h2>Consumer groups</h2>
<table id="groups">
<thead><tr><th>group</th><th>topic</th><th>partition</th><th>committed</th><th>end</th><th>lag</th><th>applied/s</th><th>open dead letters (group)</th></tr></thead>
<tbody>
${s.groups.flatMap((g) =>
  (g.partitions.length > 0 ? g.partitions : [undefined]).map(
    (p, i) =>
      html`<tr data-group="${g.group}"><td>${g.group}</td><td>${p?.topic ?? '–'}</td><td>${p?.partition ?? '–'}</td><td>${p?.committed ?? '–'}</td><td>${p?.end ?? '–'}</td><td>${p?.lag ?? '–'}</td><td>${p?.appliedPerSecond ?? 0}</td><td>${i === 0 ? g.openDeadLetters : ''}</td></tr>`,
  ),
)}
</tbody>
</table>
<h2>Parked rows</h2>
${
  s.parked.length === 0
    ? html`<p>None.</p>`
    : html`<p><a href="/parked">${s.outbox.parked} parked</a>: ${s.parked.map((p) => html`<a href="/messages/${encodeURIComponent(p.messageId)}">${p.messageId}</a> `)}</p>`
}
<h2>Sequence alarms (24 h)</h2>
${
  s.alarms.length === 0
    ? html`<p>None.</p>`
    : html`<table><thead><tr><th>at</th><th>group</th><th>kind</th><th>topic/partition</th><th>producer</th><th>key</th><th>expected</th><th>received</th></tr></thead><tbody>
${s.alarms.map((a) => html`<tr><td>${a.at}</td><td>${a.groupId}</td><td>${a.kind}</td><td>${a.topic}/${a.partition}</td><td>${a.producerId}</td><td>${a.key}</td><td>${a.expected}</td><td>${a.received}</td></tr>`)}
</tbody></table>`
}
${
  s.heldRuns.length === 0
    ? ''
    : html`<h2>Reconciliations held for approval</h2>
<p>More missing messages than the automatic repair limit: nothing was re-published. Approve a run with <code>zeroloss reconcile --approve &lt;run&gt; --reason …</code>.</p>
<table id="held-runs"><thead><tr><th>run</th><th>kind</th><th>window</th><th>finished</th><th>missing</th></tr></thead><tbody>
${s.heldRuns.map((r) => html`<tr><td>${r.id}</td><td>${r.kind}</td><td>${r.windowFrom} – ${r.windowTo}</td><td>${r.finishedAt}</td><td>${r.held}</td></tr>`)}
</tbody></table>`
}
<h2>Last reconciliations</h2>
${
  s.lastReconcile.length === 0
    ? html`<p>None yet.</p>`
    : html`<table><thead><tr><th>run</th><th>kind</th><th>window</th><th>finished</th><th>verdict</th></tr></thead><tbody>
${s.lastReconcile.map((r) => html`<tr><td>${r.id}</td><td>${r.kind}</td><td>${r.windowFrom} – ${r.windowTo}</td><td>${r.finishedAt}</td><td class="verdict-${r.verdict}">${r.verdict}</td></tr>`)}
</tbody></table>`
}`;
}
