import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ZerolossError } from '../core/errors.ts';
import { discardDeadLettersAudited, discardParked, releaseParked, replayDeadLettersAudited } from '../operations/intervention.ts';
import { reconcile } from '../operations/reconcile.ts';
import { resend } from '../operations/resend.ts';
import type { DashboardAppOptions, DashboardDeps, DashboardEnv, SendJson } from './dashboard-app.ts';
import * as input from './dashboard-input.ts';
import { requireActionRequest } from './dashboard-security.ts';

type Env = DashboardEnv;

/**
 * The actions: POST only, a JSON body, the CSRF check, and a reason for each, which goes to the audit with
 * the actor. Each is the same operations-layer call as the CLI's.
 */
export function mountActions(app: Hono<Env>, deps: DashboardDeps, options: DashboardAppOptions, send: SendJson): void {
  const actor = (c: Context<Env>) => `dashboard:${c.get('user')}`;
  app.use('/actions/*', bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ ok: false, error: 'body over 64 KiB' }, 413) }));
  app.use('/actions/*', requireActionRequest(options.csrf));
  const readBody = async (c: Context<Env>) => {
    let value: unknown;
    try {
      value = await c.req.json();
    } catch {
      throw new input.BadInput('body', 'not valid JSON');
    }
    return input.body(value);
  };
  const needPublisher = () => {
    if (!deps.publisher) throw new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'no broker to publish to: start the dashboard with one');
    return deps.publisher();
  };

  app.post('/actions/parked/release', async (c) => {
    const b = await readBody(c);
    const ids = input.idList(b.ids, input.messageId);
    const result = await releaseParked(deps.store, ids, { actor: actor(c), reason: input.reason(b.reason) });
    return send(c, 200, { ok: result.notParked.length === 0, result });
  });
  app.post('/actions/parked/discard', async (c) => {
    const b = await readBody(c);
    const ids = input.idList(b.ids, input.messageId);
    const result = await discardParked(deps.store, ids, { actor: actor(c), reason: input.reason(b.reason) });
    return send(c, 200, { ok: result.notParked.length === 0, result });
  });
  app.post('/actions/dead-letters/replay', async (c) => {
    const b = await readBody(c);
    const ids = input.idList(b.ids, input.rowId);
    const reason = input.reason(b.reason);
    if (!deps.publisher) return send(c, 409, { ok: false, error: 'no broker to publish to: replays need one' });
    // The page lists open dead letters: one another operator discarded since is left alone.
    const result = await replayDeadLettersAudited(
      { store: deps.store, deadLetters: deps.deadLetters, publisher: needPublisher() },
      ids,
      { actor: actor(c), reason },
      { skipDiscarded: true },
    );
    return send(c, 200, { ok: result.every((r) => r.ok), result });
  });
  app.post('/actions/dead-letters/discard', async (c) => {
    const b = await readBody(c);
    const ids = input.idList(b.ids, input.rowId);
    const result = await discardDeadLettersAudited({ store: deps.store, deadLetters: deps.deadLetters }, ids, {
      actor: actor(c),
      reason: input.reason(b.reason),
    });
    return send(c, 200, { ok: result.every((r) => r.ok), result });
  });
  app.post('/actions/resend', async (c) => {
    const b = await readBody(c);
    const reason = input.reason(b.reason);
    const window = input.window(stringField(b, 'from'), stringField(b, 'to'), '');
    const topic = input.optional(stringField(b, 'topic'), (v) => input.topic(v));
    if (!deps.publisher) return send(c, 409, { ok: false, error: 'no broker to publish to: resends need one' });
    const result = await resend(
      { store: deps.store, publisher: needPublisher() },
      { window, topics: topic ? [topic] : undefined },
      { actor: actor(c), reason },
    );
    return send(c, 200, { ok: result.failed.length === 0, result });
  });
  app.post('/actions/reconcile', async (c) => {
    const b = await readBody(c);
    const reason = input.reason(b.reason);
    const window = input.window(stringField(b, 'from'), stringField(b, 'to'), '1h');
    const topic = input.optional(stringField(b, 'topic'), (v) => input.topic(v));
    const group = input.optional(stringField(b, 'group'), (v) => input.name(v, 'group'));
    const repair = b.repair === true;
    if (repair && !deps.publisher) return send(c, 409, { ok: false, error: 'no broker to publish to: repairs need one' });
    const result = await reconcile(
      { store: deps.store, broker: deps.broker, brokerNotRead: deps.brokerNotRead, publisher: repair ? needPublisher() : undefined },
      window,
      { topics: topic ? [topic] : undefined, groups: group ? [group] : options.groups, repair, actor: `reconcile:${actor(c)}` },
    );
    await deps.store.audit({
      actor: actor(c),
      action: 'reconcile.run',
      subject: `reconcile_run:${result.runId ?? '-'}`,
      reason,
      details: { window: result.window, verdict: result.verdict, repair, counts: result.counts },
    });
    return send(c, 200, { ok: true, result });
  });
  app.all('/actions/*', (c) => send(c, 404, { ok: false, error: 'no such action' }));
}

function stringField(b: Record<string, unknown>, key: string): string | undefined {
  const v = b[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new input.BadInput(key, 'must be a string');
  return v;
}
