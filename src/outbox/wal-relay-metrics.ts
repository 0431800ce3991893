import type { Registry } from 'prom-client';
import { metricFactory } from '../metrics/metric-factory.ts';

/** The WAL relay's own series, beside the relay metrics of its polling path (same registry). */
export function createWalRelayMetrics(registry: Registry) {
  const { counter, gauge } = metricFactory(registry);
  const slot = ['slot'] as const;
  return {
    sent: counter('zeroloss_wal_relay_sent_total', 'Messages the WAL relay sent and recorded', slot),
    resent: counter('zeroloss_wal_relay_resent_total', 'Messages sent again after a replay (already recorded as sent: duplicates)', slot),
    failed: counter('zeroloss_wal_relay_failed_total', 'Messages that failed for their own reasons, handed to the polling path', slot),
    heldBack: counter(
      'zeroloss_wal_relay_held_back_total',
      'Messages handed to the polling path behind a failed message of their key',
      slot,
    ),
    acknowledged: counter('zeroloss_wal_relay_acknowledged_total', 'Transactions confirmed to the slot', slot),
    recordFailures: counter(
      'zeroloss_wal_relay_record_failures_total',
      "Broker answers the WAL relay could not record in the database on a try (P3's failed callback update; retried)",
      slot,
    ),
    holding: gauge('zeroloss_wal_relay_holding_slot', '1 while this instance reads the slot, 0 while it stands by', slot),
    buffered: gauge('zeroloss_wal_relay_buffered_rows', 'Rows decoded and waiting to be sent', slot),
  };
}

export type WalRelayMetrics = ReturnType<typeof createWalRelayMetrics>;
