import { Registry } from 'prom-client';
import { metricFactory } from '../metrics/metric-factory.ts';

/**
 * The consumer's Prometheus metrics (O1), labelled by consumer group so one registry can serve several
 * consumers. Reuses metrics already registered under the same name.
 */
export function createConsumerMetrics(registry: Registry = new Registry()) {
  const { counter, gauge, histogram } = metricFactory(registry);
  return {
    registry,
    processed: counter('zeroloss_consumer_processed_total', 'Messages whose effect was committed', ['group', 'type'] as const),
    duplicates: counter(
      'zeroloss_consumer_duplicates_total',
      'Deliveries skipped because their effect was applied before (via: cache or inbox)',
      ['group', 'via'] as const,
    ),
    deferred: counter(
      'zeroloss_consumer_deferred_total',
      'Messages of a non-core type set aside to their standby topic while a degrade switch was on',
      ['group', 'type'] as const,
    ),
    retries: counter('zeroloss_consumer_retries_total', 'Handler failures that were retried (mode: blocking or topic)', [
      'group',
      'type',
      'mode',
    ] as const),
    deadLettered: counter('zeroloss_consumer_dead_lettered_total', 'Messages sent to dead letters, by error code', [
      'group',
      'code',
    ] as const),
    copiesRejected: counter(
      'zeroloss_consumer_copies_rejected_total',
      'Copies refused for good by their .dlq or .retry.<n> topic (e.g. too large): dead letters kept in the table alone, retries run in place',
      ['group', 'kind'] as const,
    ),
    messageIdConflicts: counter(
      'zeroloss_consumer_message_id_conflicts_total',
      'Messages under a message id already applied with other content: dead-lettered, not skipped',
      ['group'] as const,
    ),
    poisonSuspects: counter(
      'zeroloss_consumer_poison_suspects_total',
      'Attempts of records that were running when a process died: each runs alone and counts one more start',
      ['group'] as const,
    ),
    handlerSeconds: histogram(
      'zeroloss_consumer_handler_seconds',
      'Time of one effect transaction (inbox insert, handler, commit)',
      ['group', 'type'] as const,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ),
    batchSize: histogram(
      'zeroloss_consumer_transaction_messages',
      'Messages whose effects shared one database transaction (group commit)',
      ['group'] as const,
      [1, 2, 4, 8, 16, 32, 64, 128],
    ),
    endToEndSeconds: histogram(
      'zeroloss_consumer_end_to_end_seconds',
      "From the message's creation time to its effect being committed",
      ['group', 'type'] as const,
      [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    ),
    lag: gauge('zeroloss_consumer_lag', 'Records in the partition after the committed offset', ['group', 'topic', 'partition'] as const),
    sequenceGaps: counter(
      'zeroloss_consumer_sequence_gaps_total',
      'Producer sequence gaps seen (messages missing between two received ones)',
      ['group', 'topic'] as const,
    ),
    sequenceMissing: counter('zeroloss_consumer_sequence_missing_total', 'Sequence numbers skipped in the gaps seen', [
      'group',
      'topic',
    ] as const),
    sequenceDuplicates: counter(
      'zeroloss_consumer_sequence_duplicates_total',
      'Producer sequence numbers seen again (duplicates on the topic)',
      ['group', 'topic'] as const,
    ),
    sequenceGapAlarms: counter(
      'zeroloss_consumer_sequence_gap_alarms_total',
      'Persistent sequence gaps open past the alarm threshold (control.gapAlarmAfterMs)',
      ['group', 'topic'] as const,
    ),
    sequenceRepairRequests: counter(
      'zeroloss_consumer_sequence_repair_requests_total',
      'Resend requests sent on the control channel for open sequence gaps',
      ['group', 'topic'] as const,
    ),
    sequenceOpenGaps: gauge('zeroloss_consumer_sequence_open_gaps', 'Persistent sequence gaps open, as of the last check', [
      'group',
    ] as const),
    controlInvalid: counter(
      'zeroloss_consumer_control_invalid_total',
      'Records on the control topic that were not control messages (skipped)',
      ['group'] as const,
    ),
    inFlight: gauge('zeroloss_consumer_in_flight', 'Records received and not finished', ['group'] as const),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
