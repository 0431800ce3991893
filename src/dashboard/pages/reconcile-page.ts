import type { ReconcileRunSummary } from '../../ports/operations-store.ts';
import { html, type Markup } from './html.ts';
import { actionBar } from './layout.ts';

/** Run a reconciliation over a window and read its report; resend a range of sent rows. */
export function reconcilePage(runs: ReconcileRunSummary[], canPublish: boolean): Markup {
  return html`
${actionBar()}
<form data-action="reconcile" class="filters" id="reconcile-form">
  <h2>Run a reconciliation</h2>
  <label>from <input name="from" value="1h" size="24"></label>
  <label>to <input name="to" value="now" size="24"></label>
  <label>topic <input name="topic"></label>
  <label>group <input name="group"></label>
  ${canPublish ? html`<label><input type="checkbox" name="repair"> repair (re-publish missing, at most 100)</label>` : ''}
  <button>Reconcile</button>
</form>
${
  canPublish
    ? html`<form data-action="resend" class="filters" id="resend-form">
  <h2>Resend a range of sent rows</h2>
  <label>from <input name="from" size="24"></label>
  <label>to <input name="to" value="now" size="24"></label>
  <label>topic <input name="topic"></label>
  <button>Resend</button>
</form>`
    : html`<p class="note">Resend and repair need a broker to publish to.</p>`
}
<pre id="report"></pre>
<h2>Recent runs</h2>
<table id="runs"><thead><tr><th>run</th><th>kind</th><th>window</th><th>finished</th><th>verdict</th></tr></thead><tbody>
${runs.map((r) => html`<tr><td>${r.id}</td><td>${r.kind}</td><td>${r.windowFrom} – ${r.windowTo}</td><td>${r.finishedAt}</td><td>${r.verdict}</td></tr>`)}
</tbody></table>`;
}
