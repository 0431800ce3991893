import type { MessageTrace } from '../../operations/trace.ts';
import type { AuditEntry } from '../../ports/operations-store.ts';
import { type Redaction, redactPayload } from '../payload-redaction.ts';
import { html, type Markup } from './html.ts';

const STATE_NAMES = ['pending', 'sent', 'failed', 'parked'];

/** Audit details may hold a discarded row's payload: shown through the redaction like any payload. */
function auditDetails(a: AuditEntry, redaction: Redaction): string {
  if (!a.details) return '';
  const { payload_base64: payload, ...rest } = a.details as Record<string, unknown>;
  const shown: Record<string, unknown> = { ...rest };
  if (typeof payload === 'string') shown.payload = redactPayload(Buffer.from(payload, 'base64'), redaction);
  return Object.keys(shown).length === 0 ? '' : JSON.stringify(shown);
}

/** The whole trail of one message: outbox row and transitions, broker position, each group, dead letters, audit. */
export function messagePage(t: MessageTrace, redaction: Redaction): Markup {
  const o = t.outbox;
  return html`
<p class="stop stage-${t.stop.stage}" data-stop="${t.stop.stage}"><strong>${t.stop.stage}</strong>: ${t.stop.reason}</p>
<h2>Timeline</h2>
<ol class="timeline" id="timeline">
${t.steps.map((s) => html`<li class="stage-${s.stage}"><time>${s.at}</time> <span class="stage">${s.stage}</span> ${s.text}</li>`)}
</ol>
<h2>Outbox row</h2>
${
  o
    ? html`<dl class="detail" id="outbox-row">
  <dt>state</dt><dd data-state="${o.stateName}">${o.stateName}, ${o.attempts} attempt(s)${o.lastError ? `, last error: ${o.lastError}` : ''}</dd>
  <dt>topic / key / type</dt><dd>${o.topic} / ${o.key} / ${o.type}</dd>
  <dt>producer / key sequence</dt><dd>${o.producerId} / ${o.keySeq}</dd>
  <dt>created</dt><dd>${o.createdAt}</dd>
  <dt>sent</dt><dd>${o.sentAt ? html`${o.sentAt} at partition ${o.sentPartition}, offset ${o.sentOffset}` : 'not yet'}</dd>
  <dt>trace id</dt><dd>${o.traceId}</dd>
</dl>`
    : html`<p>No outbox row (never committed in this schema, discarded, or removed by retention).</p>`
}
<h2>Transitions</h2>
${
  t.transitions.length === 0
    ? html`<p>None.</p>`
    : html`<table id="transitions"><thead><tr><th>at</th><th>from</th><th>to</th><th>attempt</th><th>actor</th><th>error</th></tr></thead><tbody>
${t.transitions.map((x) => html`<tr><td>${x.at}</td><td>${STATE_NAMES[x.from] ?? x.from}</td><td>${STATE_NAMES[x.to] ?? x.to}</td><td>${x.attempt}</td><td>${x.actor}</td><td>${x.error ?? ''}</td></tr>`)}
</tbody></table>`
}
<h2>Broker</h2>
${
  t.broker
    ? html`<p id="broker">${t.broker.recorded ? html`recorded at ${t.broker.recorded.topic}/${t.broker.recorded.partition}/${t.broker.recorded.offset}: <strong>${t.broker.recorded.check}</strong>` : 'no recorded position'}</p>
${t.broker.copies.length > 0 ? html`<ul>${t.broker.copies.map((c) => html`<li>${c.kind} copy on ${c.topic}/${c.partition}/${c.offset} at ${c.timestamp}</li>`)}</ul>` : ''}
${t.broker.incomplete.length > 0 ? html`<p class="warning">Scan incomplete: ${t.broker.incomplete.map((i) => `${i.topic}/${i.partition}: ${i.reason}`).join('; ')}</p>` : ''}`
    : html`<p>The broker was not read.</p>`
}
<h2>Consumer groups</h2>
${
  t.groups.length === 0
    ? html`<p>No group has applied or dead-lettered it.</p>`
    : html`<table id="message-groups"><thead><tr><th>group</th><th>status</th><th>inbox row</th><th>dead letters</th></tr></thead><tbody>
${t.groups.map(
  (g) => html`<tr data-group="${g.group}" data-status="${g.status}"><td>${g.group}</td><td>${g.status}</td>
<td>${g.applied ? `${g.applied.topic}/${g.applied.partition}/${g.applied.offset} at ${g.applied.processedAt.toISOString()}` : g.committed ? `committed offset ${g.committed}` : '–'}</td>
<td>${g.deadLetters.map((d) => html`<a href="/dead-letters/${d.id}">${d.id}</a> ${d.status} (${d.errorCode}: ${d.error.slice(0, 120)}) `)}</td></tr>`,
)}
</tbody></table>`
}
<h2>Audit</h2>
${
  t.audit.length === 0
    ? html`<p>None.</p>`
    : html`<table id="message-audit"><thead><tr><th>at</th><th>actor</th><th>action</th><th>reason</th><th>details</th></tr></thead><tbody>
${t.audit.map((a) => html`<tr><td>${a.at}</td><td>${a.actor}</td><td>${a.action}</td><td>${a.reason ?? ''}</td><td><code>${auditDetails(a, redaction)}</code></td></tr>`)}
</tbody></table>`
}`;
}

export function auditPage(entries: AuditEntry[], since: string): Markup {
  return html`
<form class="filters" method="get" action="/audit"><label>since <input name="since" value="${since}" size="6"></label><button>Show</button></form>
<p class="note">Details (a discarded row's content, a resend's new position) are on each message's page.</p>
<table id="audit"><thead><tr><th>at</th><th>actor</th><th>action</th><th>subject</th><th>message</th><th>reason</th></tr></thead><tbody>
${entries.map(
  (a) =>
    html`<tr data-action="${a.action}"><td>${a.at}</td><td>${a.actor}</td><td>${a.action}</td><td>${a.subject}</td><td>${a.messageId ? html`<a href="/messages/${encodeURIComponent(a.messageId)}">${a.messageId}</a>` : ''}</td><td>${a.reason ?? ''}</td></tr>`,
)}
</tbody></table>
${entries.length === 0 ? html`<p>No audit entries.</p>` : ''}`;
}
