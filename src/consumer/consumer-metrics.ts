import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The consumer's Prometheus metrics (O1), labelled by consumer group so one registry can serve several
 * consumers. Reuses metrics already registered under the same name.
 */
export function createConsumerMetrics(registry: Registry = new Registry()) {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  const registers = [registry];
  const processed = get(
    'zeroloss_consumer_processed_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_processed_total',
        help: 'Messages whose effect was committed',
        labelNames: ['group', 'type'] as const,
        registers,
      }),
  );
  const duplicates = get(
    'zeroloss_consumer_duplicates_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_duplicates_total',
        help: 'Deliveries skipped because their effect was applied before (via: cache or inbox)',
        labelNames: ['group', 'via'] as const,
        registers,
      }),
  );
  const retries = get(
    'zeroloss_consumer_retries_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_retries_total',
        help: 'Handler failures that were retried (mode: blocking or topic)',
        labelNames: ['group', 'type', 'mode'] as const,
        registers,
      }),
  );
  const deadLettered = get(
    'zeroloss_consumer_dead_lettered_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_dead_lettered_total',
        help: 'Messages sent to dead letters, by error code',
        labelNames: ['group', 'code'] as const,
        registers,
      }),
  );
  const handlerSeconds = get(
    'zeroloss_consumer_handler_seconds',
    () =>
      new Histogram({
        name: 'zeroloss_consumer_handler_seconds',
        help: 'Time of one effect transaction (inbox insert, handler, commit)',
        labelNames: ['group', 'type'] as const,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      }),
  );
  const endToEndSeconds = get(
    'zeroloss_consumer_end_to_end_seconds',
    () =>
      new Histogram({
        name: 'zeroloss_consumer_end_to_end_seconds',
        help: "From the message's creation time to its effect being committed",
        labelNames: ['group', 'type'] as const,
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
        registers,
      }),
  );
  const lag = get(
    'zeroloss_consumer_lag',
    () =>
      new Gauge({
        name: 'zeroloss_consumer_lag',
        help: 'Records in the partition after the committed offset',
        labelNames: ['group', 'topic', 'partition'] as const,
        registers,
      }),
  );
  const sequenceGaps = get(
    'zeroloss_consumer_sequence_gaps_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_sequence_gaps_total',
        help: 'Producer sequence gaps seen (messages missing between two received ones)',
        labelNames: ['group', 'topic'] as const,
        registers,
      }),
  );
  const sequenceMissing = get(
    'zeroloss_consumer_sequence_missing_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_sequence_missing_total',
        help: 'Sequence numbers skipped in the gaps seen',
        labelNames: ['group', 'topic'] as const,
        registers,
      }),
  );
  const sequenceDuplicates = get(
    'zeroloss_consumer_sequence_duplicates_total',
    () =>
      new Counter({
        name: 'zeroloss_consumer_sequence_duplicates_total',
        help: 'Producer sequence numbers seen again (duplicates on the topic)',
        labelNames: ['group', 'topic'] as const,
        registers,
      }),
  );
  const inFlight = get(
    'zeroloss_consumer_in_flight',
    () =>
      new Gauge({
        name: 'zeroloss_consumer_in_flight',
        help: 'Records received and not finished',
        labelNames: ['group'] as const,
        registers,
      }),
  );
  return {
    registry,
    processed,
    duplicates,
    retries,
    deadLettered,
    handlerSeconds,
    endToEndSeconds,
    lag,
    sequenceGaps,
    sequenceMissing,
    sequenceDuplicates,
    inFlight,
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
