import type { DeadLetterDetail, DeadLetterSummary } from '../../ports/dead-letter-store.ts';
import { type Redaction, redactPayload } from '../payload-redaction.ts';
import { actionBar } from './layout.ts';
import { html, type Markup, query } from './html.ts';

export interface DeadLetterFilterView {
  status: string;
  topic?: string;
  group?: string;
  limit: number;
  before?: string;
}

/** Dead letters newest first, filtered by status, topic and group, paged by id; replay and discard. */
export function deadLettersPage(rows: DeadLetterSummary[], f: DeadLetterFilterView): Markup {
  const next = rows.length === f.limit ? rows[rows.length - 1]?.id : undefined;
  return html`
<form class="filters" method="get" action="/dead-letters">
  <label>status <select name="status">${['dead', 'replayed', 'discarded', 'all'].map((s) => html`<option${s === f.status ? html` selected` : ''}>${s}</option>`)}</select></label>
  <label>topic <input name="topic" value="${f.topic ?? ''}"></label>
  <label>group <input name="group" value="${f.group ?? ''}"></label>
  <label>limit <input name="limit" value="${f.limit}" size="4"></label>
  <button>Filter</button>
</form>
${actionBar()}
<table id="dead-letters">
<thead><tr><th>id</th><th>status</th><th>group</th><th>origin</th><th>type</th><th>message</th><th>error</th><th>attempts</th><th>created</th><th></th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-id="${r.id}" data-status="${r.status}">
<td><a href="/dead-letters/${r.id}">${r.id}</a></td><td>${r.status}</td><td>${r.groupId}</td><td>${r.topic}/${r.partition}/${r.offset}</td><td>${r.type ?? '–'}</td>
<td>${r.messageId ? html`<a href="/messages/${encodeURIComponent(r.messageId)}">${r.messageId}</a>` : '–'}</td>
<td>${r.errorCode}: ${r.error.slice(0, 200)}</td><td>${r.attempts}</td><td>${r.createdAt}</td>
<td>${r.status === 'dead' ? html`<button data-action="dead-letters/replay" data-ids="${r.id}">Replay</button> <button data-action="dead-letters/discard" data-ids="${r.id}">Discard</button>` : ''}</td>
</tr>`,
)}
</tbody>
</table>
${rows.length === 0 ? html`<p>No dead letters match.</p>` : ''}
${next ? html`<p><a rel="next" href="/dead-letters${query({ status: f.status, topic: f.topic, group: f.group, limit: f.limit, before: next })}">Older →</a></p>` : ''}`;
}

export function deadLetterPage(d: DeadLetterDetail, redaction: Redaction): Markup {
  return html`
${actionBar()}
${d.status === 'dead' ? html`<p><button data-action="dead-letters/replay" data-ids="${d.id}">Replay</button> <button data-action="dead-letters/discard" data-ids="${d.id}">Discard</button></p>` : ''}
<dl class="detail">
  <dt>status</dt><dd>${d.status}${d.resolvedBy ? ` by ${d.resolvedBy} at ${d.resolvedAt?.toISOString()}` : ''}, replayed ${d.replayCount}×</dd>
  <dt>group</dt><dd>${d.groupId}</dd>
  <dt>origin</dt><dd>${d.topic} partition ${d.partition} offset ${d.offset}</dd>
  <dt>message</dt><dd>${d.messageId ? html`<a href="/messages/${encodeURIComponent(d.messageId)}">${d.messageId}</a>` : '–'}, type ${d.type ?? '–'}, key ${d.key}</dd>
  <dt>attempts</dt><dd>${d.attempts} (first failure ${d.firstFailureAt}, last ${d.lastFailureAt})</dd>
  <dt>error</dt><dd>${d.errorCode}: ${d.error}</dd>
  <dt>on the .dlq topic</dt><dd>${d.publishedAt ? d.publishedAt : d.copyError ? `not written (${d.copyError})` : 'not (yet) published'}</dd>
  <dt>headers</dt><dd><pre>${Object.entries(d.headers).map(([k, v]) => `${k}: ${v}\n`)}</pre></dd>
  <dt>payload</dt><dd><pre data-payload>${redactPayload(d.payload, redaction)}</pre></dd>
  <dt>stack</dt><dd><pre>${d.stack ?? '–'}</pre></dd>
</dl>`;
}
