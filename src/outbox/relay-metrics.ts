import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The relay's Prometheus metrics (O1), labelled by source so one registry can serve several relays. */
export function createRelayMetrics(registry: Registry = new Registry()) {
  const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  const labelNames = ['source'] as const;
  const sent =
    existing<Counter<'source'>>('zeroloss_relay_sent_total') ??
    new Counter({ name: 'zeroloss_relay_sent_total', help: 'Messages acknowledged by the broker', labelNames, registers: [registry] });
  const failed =
    existing<Counter<'source'>>('zeroloss_relay_failed_total') ??
    new Counter({ name: 'zeroloss_relay_failed_total', help: 'Send attempts that failed', labelNames, registers: [registry] });
  const resent =
    existing<Counter<'source'>>('zeroloss_relay_resent_total') ??
    new Counter({
      name: 'zeroloss_relay_resent_total',
      help: 'Messages acknowledged on a second or later attempt (compensation)',
      labelNames,
      registers: [registry],
    });
  const parked =
    existing<Counter<'source'>>('zeroloss_relay_parked_total') ??
    new Counter({
      name: 'zeroloss_relay_parked_total',
      help: 'Messages parked after their last attempt or a permanent rejection',
      labelNames,
      registers: [registry],
    });
  const rounds =
    existing<Counter<'source'>>('zeroloss_relay_claim_rounds_total') ??
    new Counter({
      name: 'zeroloss_relay_claim_rounds_total',
      help: 'Claim rounds run (fast path and compensation)',
      labelNames,
      registers: [registry],
    });
  const sendSeconds =
    existing<Histogram<'source'>>('zeroloss_relay_send_seconds') ??
    new Histogram({
      name: 'zeroloss_relay_send_seconds',
      help: 'Time from handing a batch to the broker client to its answer',
      labelNames,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  const pending =
    existing<Gauge<'source'>>('zeroloss_outbox_pending') ??
    new Gauge({ name: 'zeroloss_outbox_pending', help: 'Rows not yet sent (pending + failed)', labelNames, registers: [registry] });
  const parkedNow =
    existing<Gauge<'source'>>('zeroloss_outbox_parked') ??
    new Gauge({ name: 'zeroloss_outbox_parked', help: 'Rows parked, waiting for a person', labelNames, registers: [registry] });
  const oldest =
    existing<Gauge<'source'>>('zeroloss_outbox_oldest_pending_seconds') ??
    new Gauge({ name: 'zeroloss_outbox_oldest_pending_seconds', help: 'Age of the oldest unsent row', labelNames, registers: [registry] });
  return { registry, sent, failed, resent, parked, rounds, sendSeconds, pending, parkedNow, oldest };
}

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
