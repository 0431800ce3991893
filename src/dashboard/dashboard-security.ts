import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { MiddlewareHandler } from 'hono';
import { ZerolossError } from '../core/errors.ts';

/** Probes and scrapers reach these without a token: they show no message and act on none. */
export const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const LOOPBACK_NAMES = new Set(['localhost', 'ip6-localhost']);

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (LOOPBACK_NAMES.has(h) || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * The dashboard shows messages and acts on them: on any bind but loopback it must not start without a
 * token, whatever else is configured.
 */
export function checkBind(host: string, token: string | undefined): void {
  if (!isLoopback(host) && token === undefined) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      `the dashboard binds ${host}, which is not loopback: it needs a token (--token-file <file> or ZEROLOSS_DASHBOARD_TOKEN), or bind 127.0.0.1`,
    );
  }
  if (token !== undefined && token.length < 16)
    throw new ZerolossError('ZL_INVALID_CONFIG', 'the dashboard token must be at least 16 characters');
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Equal-time comparison of two secrets of any length. */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * With a token, every request but the probes must carry it: `Authorization: Bearer <token>`, or Basic auth
 * with the token as the password (what a browser prompts for; the user name is recorded as the actor).
 * Without one (loopback only), the Host header must be a loopback name too, so a page elsewhere cannot
 * reach the dashboard through DNS rebinding.
 */
export function authenticate(token: string | undefined): MiddlewareHandler<{ Variables: { user: string } }> {
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path)) return next();
    if (token === undefined) {
      const host = (c.req.header('host') ?? '').replace(/:\d+$/, '');
      if (!isLoopback(host)) return c.text('this dashboard answers on a loopback host name only', 403);
      c.set('user', 'local');
      return next();
    }
    const auth = c.req.header('authorization') ?? '';
    const [scheme, value = ''] = auth.split(' ', 2);
    let user: string | undefined;
    if (scheme?.toLowerCase() === 'bearer' && sameSecret(value, token)) user = 'token';
    if (scheme?.toLowerCase() === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0 && sameSecret(decoded.slice(colon + 1), token)) user = decoded.slice(0, colon).slice(0, 64) || 'token';
    }
    if (user === undefined) {
      c.header('www-authenticate', 'Basic realm="zeroloss", charset="UTF-8"');
      return c.text('401: this dashboard needs its token (Bearer, or Basic auth with the token as the password)', 401);
    }
    c.set('user', user.replace(/[^\w.@-]/g, '_'));
    return next();
  };
}

/**
 * Actions change data, so a page on another site must not be able to trigger them with the operator's
 * credentials (which a browser sends by itself, Basic auth included). An action is a POST with a JSON body
 * and the per-start CSRF token in `x-zeroloss-csrf` (only the dashboard's own pages know it: a cross-site
 * form cannot set the header, a cross-site fetch cannot read the page or pass the preflight); an Origin
 * header, when sent, must be this host.
 */
export function requireActionRequest(csrf: string): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== 'POST') {
      c.header('allow', 'POST');
      return c.json({ error: 'actions are POST only' }, 405);
    }
    const type = c.req.header('content-type') ?? '';
    if (!type.toLowerCase().startsWith('application/json')) return c.json({ error: 'actions take a JSON body (application/json)' }, 415);
    if (!sameSecret(c.req.header('x-zeroloss-csrf') ?? '', csrf)) return c.json({ error: 'missing or wrong x-zeroloss-csrf header' }, 403);
    const origin = c.req.header('origin');
    if (origin !== undefined && origin !== 'null') {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        return c.json({ error: 'malformed Origin header' }, 403);
      }
      if (originHost !== c.req.header('host')) return c.json({ error: 'cross-origin action refused' }, 403);
    } else if (origin === 'null') {
      return c.json({ error: 'cross-origin action refused' }, 403);
    }
    if (c.req.header('sec-fetch-site') === 'cross-site') return c.json({ error: 'cross-site action refused' }, 403);
    return next();
  };
}
