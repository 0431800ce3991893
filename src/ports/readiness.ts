import type { Registry } from 'prom-client';

/** One readiness condition: ok, or not with a short reason (never a URL, never a password). */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}

/** A condition /readyz asks; the probe server never lets one throw or hang the answer. */
export type ReadinessCheck = () => Promise<CheckResult> | CheckResult;

/** A running probe server (/healthz, /readyz, /metrics), as the features that start one hold it. */
export interface HealthServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts a probe server for a feature (its metrics and readiness checks) on the address it was given.
 * Features take it as a port; the composition root passes the HTTP one (src/adapters/http).
 */
export type StartHealthServer = (options: {
  port: number;
  host?: string;
  registry: Registry;
  checks: Record<string, ReadinessCheck>;
}) => Promise<HealthServer>;
