import { ZerolossError } from '../core/errors.ts';
import { intOption } from './args.ts';

/** The probe-and-metrics port flags shared by `relay` and `serve`; the --metrics-* names are older aliases. */
export const httpOptions = {
  'http-port': { type: 'string' },
  'http-host': { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
} as const;

/** The flags' help lines, their descriptions starting at column `column` like the command's other flags. */
export function httpHelp(column: number): string {
  const flag = (name: string) => `  ${name}`.padEnd(column);
  const more = ' '.repeat(column);
  return [
    `${flag('--http-port <n>')}serve /healthz, /readyz and /metrics on this port (alias --metrics-port)`,
    `${flag('--http-host <host>')}bind address (alias --metrics-host; default 0.0.0.0: a pod's probes and`,
    `${more}scrapers come from outside the container, and these three routes show no`,
    `${more}message, act on none and carry no secret; 127.0.0.1 keeps them local)`,
  ].join('\n');
}

/** Where to serve, or undefined when no port was given and there is no default. */
export function httpEndpoint(
  values: { 'http-port'?: string; 'http-host'?: string; 'metrics-port'?: string; 'metrics-host'?: string },
  defaultPort?: number,
): { host: string; port: number } | undefined {
  const port = values['http-port'] ?? values['metrics-port'];
  const host = values['http-host'] ?? values['metrics-host'];
  if (values['http-port'] !== undefined && values['metrics-port'] !== undefined && values['http-port'] !== values['metrics-port']) {
    throw new ZerolossError('ZL_INVALID_CONFIG', '--http-port and its alias --metrics-port disagree; pass one');
  }
  if (port === undefined && defaultPort === undefined) return undefined;
  return { host: host ?? '0.0.0.0', port: intOption(port, values['http-port'] ? 'http-port' : 'metrics-port', defaultPort ?? 0) };
}
