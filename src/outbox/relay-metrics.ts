import { Registry } from 'prom-client';
import { metricFactory } from '../metrics/metric-factory.ts';

/** The relay's Prometheus metrics (O1), labelled by source so one registry can serve several relays. */
export function createRelayMetrics(registry: Registry = new Registry()) {
  const { counter, gauge, histogram } = metricFactory(registry);
  const source = ['source'] as const;
  const sourceTopic = ['source', 'topic'] as const;
  return {
    registry,
    sent: counter('zeroloss_relay_sent_total', 'Messages acknowledged by the broker', source),
    failed: counter('zeroloss_relay_failed_total', 'Send attempts that failed', source),
    resent: counter('zeroloss_relay_resent_total', 'Messages acknowledged on a second or later attempt (compensation)', source),
    parked: counter('zeroloss_relay_parked_total', 'Messages parked after their last attempt or a permanent rejection', source),
    rounds: counter('zeroloss_relay_claim_rounds_total', 'Claim rounds run (fast path and compensation)', source),
    recordFailures: counter(
      'zeroloss_relay_record_failures_total',
      "Broker answers (acks or failures) the relay could not record in the database (P3's failed callback update)",
      source,
    ),
    sendSeconds: histogram(
      'zeroloss_relay_send_seconds',
      'Time from handing a batch to the broker client to its answer',
      source,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    ),
    claimSeconds: histogram(
      'zeroloss_relay_claim_seconds',
      'Time of one claim (find, lease and read a batch); grows when dead rows pile up in the outbox',
      source,
      [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5],
    ),
    pending: gauge('zeroloss_outbox_pending', 'Rows not yet sent (pending + failed)', source),
    parkedNow: gauge('zeroloss_outbox_parked', 'Rows parked, waiting for a person', source),
    oldest: gauge('zeroloss_outbox_oldest_pending_seconds', 'Age of the oldest unsent row', source),
    topicUnavailable: gauge(
      'zeroloss_relay_topic_unavailable',
      'Records the latest attempt at this topic deferred because the broker lacks the topic or refuses access (0 once it takes a record)',
      sourceTopic,
    ),
    topicUnavailableTotal: counter(
      'zeroloss_relay_topic_unavailable_total',
      'Record sends deferred, uncharged, because the broker lacks the topic or refuses access',
      sourceTopic,
    ),
  };
}

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
