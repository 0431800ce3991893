import type { OutboxRowView } from '../../ports/operations-store.ts';
import { html, type Markup } from './html.ts';
import { actionBar } from './layout.ts';

/** Rows the relay gave up on, with why; release (back to pending) or discard (content kept in the audit). */
export function parkedPage(rows: OutboxRowView[], f: { topic?: string; limit: number }): Markup {
  return html`
<form class="filters" method="get" action="/parked">
  <label>topic <input name="topic" value="${f.topic ?? ''}"></label>
  <label>limit <input name="limit" value="${f.limit}" size="4"></label>
  <button>Filter</button>
</form>
${actionBar()}
<table id="parked">
<thead><tr><th>message</th><th>topic</th><th>key</th><th>type</th><th>attempts</th><th>parked since</th><th>last error</th><th></th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-id="${r.messageId}">
<td><a href="/messages/${encodeURIComponent(r.messageId)}">${r.messageId}</a></td><td>${r.topic}</td><td>${r.key}</td><td>${r.type}</td><td>${r.attempts}</td>
<td>${r.modifiedAt}</td><td>${r.lastError ?? '–'}</td>
<td><button data-action="parked/release" data-ids="${r.messageId}">Release</button> <button data-action="parked/discard" data-ids="${r.messageId}">Discard</button></td>
</tr>`,
)}
</tbody>
</table>
${rows.length === 0 ? html`<p>No parked rows.</p>` : rows.length === f.limit ? html`<p>The first ${f.limit} shown: <a href="/outbox?state=parked&amp;from=31d">page through every parked row</a> (last 31 days), or filter by topic.</p>` : ''}`;
}
