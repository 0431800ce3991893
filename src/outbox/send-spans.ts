import { HEADER, type OutgoingRecord } from '../core/envelope.ts';
import type { SendSpan, Tracing } from '../ports/tracing.ts';
import type { PublishOutcome } from '../ports/transport.ts';

/** One publish call's send spans, and the records to hand the publisher in their place. */
export interface SendSpans {
  /**
   * The rows' records, each a copy whose headers add this send's context (SEND_TRACEPARENT_HEADER). The
   * stored records are left as they are: what is stored is what was enqueued, and a resend gets its own.
   */
  records: OutgoingRecord[];
  /** Ends each span with what the broker answered for its record: where it landed, or why not. */
  end(outcomes: readonly PublishOutcome[]): void;
}

/**
 * A send span per record, parented on the trace context stored with it at enqueue. Callers ask
 * `tracing.active()` first and skip this (and the copies) when nothing is traced.
 */
export function startSendSpans(tracing: Tracing, rows: ReadonlyArray<{ record: OutgoingRecord; attempt: number }>): SendSpans {
  const spans: SendSpan[] = [];
  const records = rows.map(({ record, attempt }) => {
    const span = tracing.send(record.topic, record.headers, {
      'messaging.message.id': record.headers[HEADER.id],
      'zeroloss.key': record.key,
      'zeroloss.attempt': attempt,
    });
    spans.push(span);
    const headers = { ...record.headers };
    span.inject(headers);
    return { ...record, headers };
  });
  return { records, end: (outcomes) => endSendSpans(spans, outcomes) };
}

function endSendSpans(spans: SendSpan[], outcomes: readonly PublishOutcome[]): void {
  spans.forEach((span, i) => {
    const outcome = outcomes[i];
    if (outcome?.ok) {
      span.setAttributes({
        'messaging.destination.partition.id': outcome.partition === undefined ? undefined : String(outcome.partition),
        'zeroloss.offset': outcome.offset?.toString(),
      });
      span.end();
    } else if (outcome && !outcome.attempted) {
      // Held back behind its key's failed record, never sent: not an error of its own.
      span.event('zeroloss.held_back');
      span.end();
    } else {
      span.end(outcome ? outcome.error : new Error('publisher gave no outcome for this record'));
    }
  });
}
