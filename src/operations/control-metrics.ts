import type { Registry } from 'prom-client';
import { metricFactory } from '../metrics/metric-factory.ts';

/** Metrics of the control channel (C9, O9), on either side; `side` is 'producer' (serve) or 'consumer'. */
export function createControlMetrics(registry: Registry) {
  const { counter } = metricFactory(registry);
  return {
    received: counter('zeroloss_control_received_total', 'Control messages read, by side and kind', ['side', 'kind'] as const),
    invalid: counter('zeroloss_control_invalid_total', 'Records on the control topic that were not valid control messages (skipped)', [
      'side',
    ] as const),
    failures: counter('zeroloss_control_handler_failures_total', 'Control message handlers that failed (tried again)', ['side'] as const),
    skipped: counter(
      'zeroloss_control_skipped_total',
      'Control messages skipped after their handler kept failing (the channel is advisory: the sender repeats)',
      ['side'] as const,
    ),
    sent: counter('zeroloss_control_sent_total', 'Control messages queued to send, by side and kind', ['side', 'kind'] as const),
  };
}

export type ControlMetrics = ReturnType<typeof createControlMetrics>;
