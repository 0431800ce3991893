import type { DeadLetterWriter } from '../ports/dead-letter-store.ts';
import type { InboxCache } from '../ports/inbox-cache.ts';
import type { InboxStore, StartLog } from '../ports/inbox-store.ts';
import type { Database } from '../ports/sql-executor.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import type { SequenceStore } from '../ports/sequence-store.ts';
import type { Publisher } from '../ports/transport.ts';
import { Chain } from './chain.ts';
import type { ResolvedConsumerConfig } from './consumer-config.ts';
import type { ConsumerEvents, ConsumerReporter } from './consumer-events.ts';
import type { ConsumerMetrics } from './consumer-metrics.ts';
import type { Delivery } from './delivery.ts';
import { EffectBatcher } from './effect-batcher.ts';
import type { HandlerRegistry } from './handler-registry.ts';
import { deadLetterStage } from './middleware/dead-letter.ts';
import { type DeferRules, deferStage } from './middleware/defer.ts';
import { decodeStage } from './middleware/decode.ts';
import { holdStage } from './middleware/hold.ts';
import { dedupCacheStage } from './middleware/dedup-cache.ts';
import { inboxTransactionStage } from './middleware/inbox-transaction.ts';
import { laneOrderStage } from './middleware/lane-order.ts';
import { metricsStage } from './middleware/metrics.ts';
import { offsetProgressStage } from './middleware/offset-progress.ts';
import { retryStage } from './middleware/retry.ts';
import { routeStage } from './middleware/route.ts';
import { tracingStage } from './middleware/tracing.ts';
import type { OffsetTracker } from './offset-tracker.ts';
import { withSequenceMarks } from './sequence-marks.ts';
import { poisonGuardStage } from './poison-guard.ts';

export interface ConsumerChainDeps {
  config: ResolvedConsumerConfig;
  handlers: HandlerRegistry;
  db: Database;
  inbox: InboxStore & StartLog;
  deadLetters: DeadLetterWriter;
  publisher: Publisher | undefined;
  cache: InboxCache | undefined;
  /** Persistent sequence marks (C9, `control`): written in each effect transaction, after the inbox rows. */
  sequences?: SequenceStore;
  tracker: OffsetTracker;
  metrics: ConsumerMetrics;
  reporter: ConsumerReporter;
  /** Process spans (`otelTracing()`); default none, and then the chain has no tracing stage. */
  tracing?: Tracing;
  /** Non-core types set aside to a standby topic while a degrade switch is on; default none. */
  defer?: DeferRules;
  /** Called after each finished record (the consumer resumes a paused subscription). */
  onFinished: () => void;
  report: (error: Error) => void;
}

/**
 * The consumer chain: every delivered record goes through these stages, outermost first. This list is
 * the reference (docs/consumer.md mirrors it); each stage's file says what it does and why.
 *
 *   stage            takes → gives        does
 *   offset progress  Delivery             on finish: marks the offset done (broker offsets); with database
 *                                         offsets, writes the position with the effect or, for other
 *                                         outcomes, after it. The one place the position moves.
 *   tracing          Delivery             the process span, child of the trace context stored at enqueue; the
 *                                         stages inside (handler included) run in it; retries and dead
 *                                         letters are events on it. Only with tracing wired in, and a
 *                                         no-op while no OpenTelemetry SDK is registered.
 *   metrics          Delivery             counts processed and duplicate records, emits `processed`
 *   dead letter      Delivery             catches what the stages inside gave up on: dead_letter row, `.dlq` copy
 *   decode           Delivery → Decoded   size limit, envelope headers, UTF-8, JSON
 *   route            Decoded → Routed     handler by type, upcast, schema, idempotency key, content digest
 *   defer            Routed               only with `defer` rules: a listed type whose switch is on goes to its
 *                                         standby topic, unapplied, to be drained later (middleware/defer.ts)
 *   cache            Routed               optional Redis fast path: a remembered key is a duplicate; a lock
 *   retry            Routed               the type's retry policy; runs the rest once per attempt (`perAttempt`)
 *   hold             Routed               a NotYetError (predecessor not landed) is held and rerun, uncharged,
 *                                         up to the type's `hold.maxMs`; then dead letter (`perAttempt`)
 *   ── each attempt ──
 *   key order        Routed               starts an attempt only once the key's previous message allows it
 *   poison guard     Routed               marks the attempt durably; a suspect runs alone; too many starts: poison
 *   effect           Routed               one transaction: inbox row, sequence marks (`control`), handler, position
 *                                         (database offsets), commit
 *
 * Each stage calls `next` at most once, with the same delivery (chain.ts enforces it), except retry and hold,
 * which call it once per attempt. Why this order: the dead-letter stage must see every failure of decoding,
 * routing and handling; decoding and routing run once per record, not per attempt; the cache runs before
 * retries so a known duplicate costs no database round trip; the poison guard marks only attempts, so a
 * record merely waiting (retry delay, its key's turn) when the process dies is not a suspect.
 */
export function buildConsumerChain(deps: ConsumerChainDeps): { run: (delivery: Delivery) => Promise<void>; stages: string[] } {
  const { config, metrics, publisher } = deps;
  const tracing = deps.tracing ?? noTracing;
  const traced = tracing !== noTracing;
  const reporter = traced ? tracedReporter(deps.reporter, tracing) : deps.reporter;
  const unavailable = { ...config.unavailableBackoff, onError: deps.report };
  const storeOffsets = config.offsetStore === 'database';
  const batchInbox = deps.sequences ? withSequenceMarks(deps.inbox, deps.sequences) : deps.inbox;
  const batcher = new EffectBatcher(deps.db, batchInbox, {
    ...config.batch,
    onTransaction: (messages) => metrics.batchSize.observe({ group: config.groupId }, messages),
  });
  const { cache, defer } = deps;
  const outer = Chain.start().add('offset progress', offsetProgressStage({ ...deps, storeOffsets }));
  const beforeRetry = (traced ? outer.add('tracing', tracingStage(tracing)) : outer)
    .add('metrics', metricsStage(metrics, reporter))
    .add(
      'dead letter',
      deadLetterStage({ writer: deps.deadLetters, publisher, topicCopy: config.deadLetterTopic, reporter, metrics, unavailable }),
    )
    .add('decode', decodeStage({ maxPayloadBytes: config.maxPayloadBytes }))
    .add('route', routeStage(deps.handlers));
  const routed = defer ? beforeRetry.add('defer', deferStage(defer, publisher, deps.report)) : beforeRetry;
  const chain = (cache ? routed.add('cache', dedupCacheStage(cache, config.inbox)) : routed)
    .add('retry', retryStage({ publisher, reporter, metrics, unavailable }), { perAttempt: true })
    .add('hold', holdStage(), { perAttempt: true })
    .add('key order', laneOrderStage())
    .add(
      'poison guard',
      poisonGuardStage(deps.inbox, deps.inbox, { maxStarts: config.poison.maxStarts, retry: unavailable, reporter, metrics }),
    )
    .add('effect', inboxTransactionStage(batcher, metrics, config.inbox.retentionMs));
  return { run: chain.build(), stages: chain.names };
}

/**
 * Reports retries also as events on the span active where they are reported: the retry stage runs inside
 * the record's process span, so each retry lands on its message's span.
 */
function tracedReporter(reporter: ConsumerReporter, tracing: Tracing): ConsumerReporter {
  return {
    emit<K extends keyof ConsumerEvents>(event: K, ...args: ConsumerEvents[K]): boolean {
      if (event === 'retry' && tracing.active()) {
        const retry = args[0] as ConsumerEvents['retry'][0];
        tracing.eventOnActiveSpan('zeroloss.retry', {
          'zeroloss.attempt': retry.attempt,
          'zeroloss.retry.mode': retry.mode,
          'zeroloss.retry.delay_ms': retry.delayMs,
          'error.message': retry.error,
        });
      }
      return reporter.emit(event, ...args);
    },
  };
}
