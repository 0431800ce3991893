import type { ConsumerReporter } from '../consumer-events.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import type { Middleware } from '../delivery.ts';

/**
 * Outermost stage: counts what happened to each finished delivery and reports it. Dead letters and retries
 * are counted where they happen; end-to-end latency runs from the producer's creation time to the commit.
 */
export function metricsMiddleware(metrics: ConsumerMetrics, reporter: ConsumerReporter): Middleware {
  return async (d, next) => {
    await next();
    if (d.outcome !== 'processed' && d.outcome !== 'duplicate') return;
    const type = d.envelope?.type ?? '';
    if (d.outcome === 'processed') {
      metrics.processed.inc({ group: d.groupId, type });
      const created = Date.parse(d.envelope?.createdAt ?? '');
      if (!Number.isNaN(created)) {
        metrics.endToEndSeconds.observe({ group: d.groupId, type }, Math.max(0, ((d.committedAt ?? Date.now()) - created) / 1000));
      }
    } else {
      metrics.duplicates.inc({ group: d.groupId, via: d.duplicateVia ?? 'inbox' });
    }
    reporter.emit('processed', {
      groupId: d.groupId,
      type,
      messageId: d.envelope?.id ?? '',
      key: d.record.key,
      topic: d.record.topic,
      partition: d.record.partition,
      offset: d.record.offset,
      outcome: d.outcome,
      via: d.duplicateVia,
    });
  };
}
