/**
 * The command-line options every relay process of the fault suite takes (the same names as
 * `zeroloss relay`), and the relay settings they make, so the suite's own relay workers and its broken
 * builds run with the settings the nemesis plans for.
 */
export const relayOptions = {
  pg: { type: 'string' },
  schema: { type: 'string' },
  'lease-ms': { type: 'string' },
  'delivery-timeout-ms': { type: 'string' },
  'backoff-base-ms': { type: 'string' },
  'backoff-max-ms': { type: 'string' },
  'idle-interval-ms': { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

type RelayValues = { [K in keyof typeof relayOptions]?: string };

const number = (value: string | undefined, fallback: number): number => (value === undefined ? fallback : Number(value));

/** The publisher's delivery timeout (`--delivery-timeout-ms`, default 30 s). */
export function deliveryTimeoutMs(values: RelayValues): number {
  return number(values['delivery-timeout-ms'], 30_000);
}

/** Batch, lease, backoff and idle interval, with the relay's defaults. */
export function relaySettings(values: RelayValues) {
  return {
    batchSize: number(values['batch-size'], 500),
    leaseMs: number(values['lease-ms'], 60_000),
    backoff: { baseMs: number(values['backoff-base-ms'], 1_000), maxMs: number(values['backoff-max-ms'], 300_000), jitter: 0.5 },
    idleIntervalMs: number(values['idle-interval-ms'], 60_000),
  };
}
