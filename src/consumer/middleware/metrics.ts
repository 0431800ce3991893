import type { Stage } from '../chain.ts';
import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import type { Delivery } from '../delivery.ts';

/**
 * Counts what happened to each processed, duplicate or deferred delivery and reports the first two (`processed`
 * event). Dead letters and retries are counted where they happen; end-to-end latency runs from the
 * producer's creation time to the commit.
 */
export function metricsStage(metrics: ConsumerMetrics, reporter: ConsumerReporter): Stage<Delivery> {
  return async (d, next) => {
    await next(d);
    const outcome = d.outcome;
    if (outcome?.kind === 'deferred') metrics.deferred.inc({ group: d.groupId, type: d.decoded?.envelope.type ?? '' });
    if (outcome?.kind !== 'processed' && outcome?.kind !== 'duplicate') return;
    const envelope = d.decoded?.envelope;
    const type = envelope?.type ?? '';
    if (outcome.kind === 'processed') {
      metrics.processed.inc({ group: d.groupId, type });
      const created = Date.parse(envelope?.createdAt ?? '');
      if (!Number.isNaN(created)) {
        metrics.endToEndSeconds.observe({ group: d.groupId, type }, Math.max(0, (outcome.committedAt - created) / 1000));
      }
    } else {
      metrics.duplicates.inc({ group: d.groupId, via: outcome.via });
    }
    reporter.emit('processed', {
      groupId: d.groupId,
      type,
      messageId: envelope?.id ?? '',
      producerId: envelope?.producerId ?? '',
      key: d.record.key,
      topic: d.record.topic,
      partition: d.record.partition,
      offset: d.record.offset,
      outcome: outcome.kind,
      via: outcome.kind === 'duplicate' ? outcome.via : undefined,
    });
  };
}
