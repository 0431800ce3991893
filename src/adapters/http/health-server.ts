import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorSummary } from '../../core/errors.ts';
import type { CheckResult, HealthServer, ReadinessCheck } from '../../ports/readiness.ts';

export type { CheckResult, HealthServer, ReadinessCheck } from '../../ports/readiness.ts';

export interface HealthServerOptions {
  port: number;
  /** Default 0.0.0.0: probes and scrapers reach a pod on its own address, and these routes carry no secrets. */
  host?: string;
  /** Served at /metrics in the Prometheus text format. */
  registry: Registry;
  /** Named conditions for /readyz; all must hold. */
  checks: Record<string, ReadinessCheck>;
  /** A check that has not answered by then failed (default 2000 ms). */
  checkTimeoutMs?: number;
  /** One answer serves every probe for this long, so a probe storm costs one round of checks (default 1000 ms). */
  cacheMs?: number;
}

interface Readiness {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

/**
 * The HTTP adapter for probes: the orchestrator endpoints, and nothing else on that port: /healthz (200 while the event loop runs),
 * /readyz (200, or 503 naming the failed checks) and /metrics. None shows or acts on messages, so none
 * needs a token.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const timeoutMs = options.checkTimeoutMs ?? 2_000;
  const cacheMs = options.cacheMs ?? 1_000;
  let cached: { at: number; value: Promise<Readiness> } | undefined;

  const readiness = (): Promise<Readiness> => {
    // Concurrent probes share the round in flight as well as a recent answer.
    if (cached && Date.now() - cached.at < cacheMs) return cached.value;
    const value = evaluate(options.checks, timeoutMs);
    cached = { at: Date.now(), value };
    return value;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      json(res, 200, { alive: true });
    } else if (path === '/readyz') {
      readiness().then((r) => json(res, r.ready ? 200 : 503, r));
    } else if (path === '/metrics') {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(redact(errorSummary(error))),
      );
    } else {
      res.writeHead(404).end();
    }
  };

  const server = createServer(handle);
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    host,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function evaluate(checks: Record<string, ReadinessCheck>, timeoutMs: number): Promise<Readiness> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => runCheck(checks[name] as ReadinessCheck, timeoutMs)));
  const out: Record<string, CheckResult> = {};
  names.forEach((name, i) => {
    out[name] = results[i] as CheckResult;
  });
  return { ready: results.every((r) => r.ok), checks: out };
}

/** Never throws: a thrown error or a timeout is a failed check whose detail says so. */
async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    const result = await Promise.race([Promise.resolve().then(check), timeout]);
    return result.detail === undefined ? result : { ...result, detail: redact(result.detail) };
  } catch (error) {
    return { ok: false, detail: redact(errorSummary(error, 200)) };
  } finally {
    clearTimeout(timer);
  }
}

/** Driver messages may quote a connection URL; its user and password stay out of an unauthenticated answer. */
function redact(text: string): string {
  return text.replace(/\/\/[^/\s@]*@/g, '//***@');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
