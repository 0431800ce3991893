import { html, type Markup } from './html.ts';

export interface PageContext {
  csrf: string;
  schema: string;
  /** Where the data comes from, connection passwords masked. */
  source: string;
  user: string;
}

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/outbox', 'Outbox'],
  ['/parked', 'Parked'],
  ['/dead-letters', 'Dead letters'],
  ['/inboxes', 'Inboxes'],
  ['/audit', 'Audit'],
  ['/reconcile', 'Reconcile & resend'],
];

/** The frame of every page: navigation, the CSRF token for actions, and the client script. */
export function layout(ctx: PageContext, title: string, body: Markup, options: { charts?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="zeroloss-csrf" content="${ctx.csrf}">
<title>${title} · zeroloss</title>
<link rel="stylesheet" href="/assets/dashboard.css">
${options.charts ? html`<link rel="stylesheet" href="/assets/uPlot.min.css"><script src="/assets/uPlot.iife.min.js"></script>` : ''}
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<header>
  <strong>zeroloss</strong>
  <nav>${NAV.map(([href, label]) => html`<a href="${href}">${label}</a>`)}</nav>
  <form action="/messages" method="get" class="search"><input name="id" placeholder="message id" aria-label="message id"><button>Trace</button></form>
  <span class="source">schema <code>${ctx.schema}</code> · ${ctx.source} · ${ctx.user}</span>
</header>
<main>
<h1>${title}</h1>
${body}
</main>
</body>
</html>`.text;
}

/** The reason box and result line every page with actions shares; the client script reads them. */
export function actionBar(): Markup {
  return html`<div class="actions">
  <label>Reason (required, goes to the audit) <input id="reason" name="reason" maxlength="500" size="50"></label>
  <output id="result" aria-live="polite"></output>
</div>`;
}

export function errorPage(ctx: PageContext, status: number, message: string): string {
  return layout(ctx, `${status}`, html`<p class="error" data-error="${status}">${message}</p>`);
}
