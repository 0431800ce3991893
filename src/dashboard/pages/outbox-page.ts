import type { OutboxRowView } from '../../ports/operations-store.ts';
import { html, type Markup, query } from './html.ts';

export interface OutboxFilterView {
  state?: string;
  topic?: string;
  key?: string;
  from: string;
  to: string;
  limit: number;
}

const STATE_NAMES = ['pending', 'sent', 'failed', 'parked'];

/** Outbox rows committed in a window, by state, topic and key, in commit order, paged by a keyset cursor. */
export function outboxPage(rows: OutboxRowView[], next: string | undefined, f: OutboxFilterView): Markup {
  return html`
<form class="filters" method="get" action="/outbox">
  <label>state <select name="state"><option value="">any</option>${STATE_NAMES.map((s) => html`<option${s === f.state ? html` selected` : ''}>${s}</option>`)}</select></label>
  <label>topic <input name="topic" value="${f.topic ?? ''}"></label>
  <label>key <input name="key" value="${f.key ?? ''}"></label>
  <label>from <input name="from" value="${f.from}" size="24"></label>
  <label>to <input name="to" value="${f.to}" size="24"></label>
  <label>limit <input name="limit" value="${f.limit}" size="4"></label>
  <button>Filter</button>
</form>
<p class="note">Times: ISO-8601, epoch ms, now, or a duration ago (15m, 2h).</p>
<table id="outbox">
<thead><tr><th>seq</th><th>message</th><th>topic</th><th>key</th><th>type</th><th>state</th><th>attempts</th><th>created</th><th>sent at</th><th>partition/offset</th><th>last error</th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-id="${r.messageId}" data-state="${STATE_NAMES[r.state] ?? r.state}">
<td>${r.seqId}</td><td><a href="/messages/${encodeURIComponent(r.messageId)}">${r.messageId}</a></td><td>${r.topic}</td><td>${r.key}</td><td>${r.type}</td>
<td>${r.inStream ? 'pending (in the WAL stream)' : (STATE_NAMES[r.state] ?? r.state)}</td><td>${r.attempts}</td><td>${r.createdAt}</td><td>${r.sentAt ?? '–'}</td>
<td>${r.sentPartition !== null ? `${r.sentPartition}/${r.sentOffset}` : '–'}</td><td>${r.lastError ?? '–'}</td>
</tr>`,
)}
</tbody>
</table>
${rows.length === 0 ? html`<p>No rows match.</p>` : ''}
${next ? html`<p><a rel="next" href="/outbox${query({ state: f.state, topic: f.topic, key: f.key, from: f.from, to: f.to, limit: f.limit, after: next })}">Next →</a></p>` : ''}`;
}
