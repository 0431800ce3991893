import { Registry } from 'prom-client';
import { metricFactory } from '../metrics/metric-factory.ts';

/**
 * Metrics of the operations side (O1, O2): reconciliation, resends, repairs, retention, plus the
 * schema-wide producer and consumer view the collector derives from the database and the broker (so one
 * `zeroloss serve` endpoint covers every relay and consumer process). Reuses metrics already registered
 * under the same name, so several tools can share one registry.
 */
export function createOpsMetrics(registry: Registry = new Registry()) {
  const { counter, gauge, histogram } = metricFactory(registry);
  const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

  return {
    registry,
    // reconciliation (O2)
    reconcileRuns: counter('zeroloss_reconcile_runs_total', 'Reconciliation runs by kind and verdict', ['kind', 'verdict'] as const),
    reconcileMissing: gauge(
      'zeroloss_reconcile_missing',
      'Messages missing at a stage (broker, or a consumer group) in the last run of this kind',
      ['kind', 'stage'] as const,
    ),
    reconcileGaps: counter('zeroloss_reconcile_gaps_total', 'Missing messages found by reconciliation, summed over runs', [
      'kind',
    ] as const),
    reconcileLastRun: gauge('zeroloss_reconcile_last_run_timestamp_seconds', 'When a run of this kind last finished (any verdict)', [
      'kind',
    ] as const),
    reconcileFailures: counter('zeroloss_reconcile_failures_total', 'Reconciliation runs that failed to complete', ['kind'] as const),
    // escalation (O8)
    reconcileEscalations: counter(
      'zeroloss_reconcile_escalations_total',
      'Runs that found more missing messages than the automatic repair limit and were held for a person',
      ['kind'] as const,
    ),
    reconcileHeld: gauge('zeroloss_reconcile_held_reports', 'Held reconciliation runs waiting for a person to approve them', []),
    escalationHookFailures: counter(
      'zeroloss_reconcile_escalation_hook_failures_total',
      'Escalation hooks (the emergency plan) that failed or ran out of time',
      ['kind'] as const,
    ),
    // repairs and resends (P5, O5)
    markedSent: counter('zeroloss_ops_marked_sent_total', 'Rows marked sent because the broker already held the message (P5)', []),
    resent: counter('zeroloss_ops_resent_total', 'Messages re-published from the outbox by resend or reconcile --repair', [
      'reason',
    ] as const),
    // retention
    retentionDeleted: counter('zeroloss_retention_deleted_total', 'Rows deleted by retention', ['table'] as const),
    retentionRuns: counter('zeroloss_retention_runs_total', 'Retention runs', []),
    retentionLastRun: gauge('zeroloss_retention_last_run_timestamp_seconds', 'When retention last finished', []),
    // producer, as the database shows it across all relays (O1)
    // The outbox table's series carry no source label (alerts written for it keep matching); a state-column
    // source's carry source="<its name>", so the same alerts cover it.
    outboxRows: gauge(
      'zeroloss_outbox_rows',
      'Unsent rows by state (pending, failed, parked, stuck): the outbox table, and each state-column source (label source)',
      ['state', 'source'] as const,
    ),
    outboxOldest: gauge(
      'zeroloss_outbox_oldest_unsent_seconds',
      'Age of the oldest unsent (pending or failed) row: the outbox table, and each state-column source (label source)',
      ['source'] as const,
    ),
    transitions: counter(
      'zeroloss_outbox_transitions_total',
      'Outbox state changes recorded by any relay or tool (to: sent, failed, parked, pending; kind: first, compensation, resend, repair)',
      ['to', 'kind'] as const,
    ),
    commitToAck: histogram(
      'zeroloss_outbox_commit_to_ack_seconds',
      "From a row's commit to the broker ack being recorded (send latency as the business sees it)",
      ['kind'] as const,
      latencyBuckets,
    ),
    // consumers, as the database and the broker show them (O1, O4)
    endToEnd: histogram(
      'zeroloss_end_to_end_seconds',
      "From a message's commit in the outbox to its effect being committed by a consumer group",
      ['group'] as const,
      latencyBuckets,
    ),
    applied: counter('zeroloss_applied_total', 'Effects committed, by consumer group (inbox rows)', ['group'] as const),
    groupLag: gauge('zeroloss_group_lag', 'Records after the committed offset, per group and partition', [
      'group',
      'topic',
      'partition',
    ] as const),
    groupLagTotal: gauge('zeroloss_group_lag_total', 'Records after the committed offsets, summed per group', ['group'] as const),
    deadLettersOpen: gauge('zeroloss_dead_letters_open', 'Dead letters waiting for a person, per group', ['group'] as const),
    sequenceAlarms: counter('zeroloss_sequence_alarms_total', 'Producer sequence gaps and duplicates recorded by consumers', [
      'group',
      'kind',
    ] as const),
    walSlotRetained: gauge('zeroloss_wal_slot_retained_bytes', 'WAL the server keeps for a logical replication slot (WAL relay)', [
      'slot',
    ] as const),
    walSlotLag: gauge('zeroloss_wal_slot_lag_bytes', 'WAL written since the slot confirmed position: what its relay has not confirmed', [
      'slot',
    ] as const),
    walSlotActive: gauge('zeroloss_wal_slot_active', '1 while a relay reads the slot; 0 while nobody does', ['slot'] as const),
    walSlotLost: gauge('zeroloss_wal_slot_lost', '1 when the slot lost the WAL it needs (max_slot_wal_keep_size): recreate it', [
      'slot',
    ] as const),
    collectorErrors: counter('zeroloss_ops_collector_errors_total', 'Metric collection rounds that failed', []),
  };
}

export type OpsMetrics = ReturnType<typeof createOpsMetrics>;
