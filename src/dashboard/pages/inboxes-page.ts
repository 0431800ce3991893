import type { InboxHit } from '../../ports/operations-store.ts';
import { html, type Markup, query } from './html.ts';

export interface InboxFilterView {
  group?: string;
  topic?: string;
  from: string;
  to: string;
  limit: number;
}

/** Effects applied by the consumer groups (inbox rows), newest first, by group, topic and time. */
export function inboxesPage(rows: InboxHit[], next: string | undefined, f: InboxFilterView): Markup {
  return html`
<form class="filters" method="get" action="/inboxes">
  <label>group <input name="group" value="${f.group ?? ''}"></label>
  <label>topic <input name="topic" value="${f.topic ?? ''}"></label>
  <label>from <input name="from" value="${f.from}" size="24"></label>
  <label>to <input name="to" value="${f.to}" size="24"></label>
  <label>limit <input name="limit" value="${f.limit}" size="4"></label>
  <button>Filter</button>
</form>
<table id="inboxes">
<thead><tr><th>processed</th><th>group</th><th>message</th><th>origin</th><th>idempotency key</th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-id="${r.messageId}" data-group="${r.groupId}">
<td>${r.processedAt}</td><td>${r.groupId}</td><td><a href="/messages/${encodeURIComponent(r.messageId)}">${r.messageId}</a></td>
<td>${r.topic}/${r.partition}/${r.offset.toString()}</td><td>${r.idempotencyKey}</td></tr>`,
)}
</tbody>
</table>
${rows.length === 0 ? html`<p>No inbox rows match.</p>` : ''}
${next ? html`<p><a rel="next" href="/inboxes${query({ group: f.group, topic: f.topic, from: f.from, to: f.to, limit: f.limit, before: next })}">Older →</a></p>` : ''}`;
}
