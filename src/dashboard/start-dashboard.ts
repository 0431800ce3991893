import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { type DashboardDeps, dashboardApp } from './dashboard-app.ts';
import { checkBind } from './dashboard-security.ts';
import type { Redaction } from './payload-redaction.ts';
import { SeriesRecorder } from './series-recorder.ts';

export type { DashboardDeps } from './dashboard-app.ts';

export const dashboardOptionsSchema = z
  .object({
    /** Default loopback: the dashboard shows messages and acts on them. Any other bind needs `token`. */
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(9466),
    /** Required on every request but the probes (Bearer, or Basic auth with it as the password). */
    token: z.string().optional(),
    /** Payload fields to mask in pages, or a function from the decoded payload to what may be shown. */
    redactFields: z.array(z.string().min(1)).optional(),
    redact: z.custom<(payload: unknown) => unknown>((v) => typeof v === 'function').optional(),
    /** Consumer groups to report; default the groups the schema knows. */
    groups: z.array(z.string().min(1)).optional(),
    /** How often the plots get a point, and how much they keep. */
    sampleEveryMs: z.number().int().min(100).default(10_000),
    historyMs: z.number().int().positive().default(3_600_000),
    commitDelayMs: z.number().int().nonnegative().default(5_000),
    log: z.custom<(line: string) => void>((v) => typeof v === 'function').optional(),
  })
  .strict();

export type DashboardOptions = z.input<typeof dashboardOptionsSchema>;

export interface Dashboard {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts the operations dashboard over the operations layer: overview with the last hour's plots, lists,
 * a message's trail, and audited actions. Refuses a non-loopback bind without a token before listening.
 */
export async function startDashboard(deps: DashboardDeps, options: DashboardOptions = {}): Promise<Dashboard> {
  const o = parseConfig(dashboardOptionsSchema, options, 'dashboard');
  checkBind(o.host, o.token);
  const redaction: Redaction = o.redact ? { redact: o.redact } : o.redactFields ? { fields: o.redactFields } : undefined;
  const series = new SeriesRecorder(
    { store: deps.store, broker: deps.broker },
    { everyMs: o.sampleEveryMs, historyMs: o.historyMs, groups: o.groups, commitDelayMs: o.commitDelayMs },
  );
  const app = dashboardApp(deps, {
    token: o.token,
    csrf: randomBytes(24).toString('base64url'),
    redaction,
    groups: o.groups,
    series,
    everyMs: o.sampleEveryMs,
    log: o.log ?? ((line) => console.error(line)),
  });
  const server = createAdaptorServer({ fetch: app.fetch, hostname: o.host });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  series.start();
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    host: o.host,
    port,
    url: `http://${hostInUrl}:${port}`,
    async close() {
      await series.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      });
    },
  };
}
