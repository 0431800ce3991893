import type { Registry } from 'prom-client';
import { ZerolossError } from '../core/errors.ts';
import { startHealthServer } from '../adapters/http/health-server.ts';
import { otelTracing } from '../adapters/otel/otel-tracing.ts';
import type { Cache, Store, Transport } from '../ports/backends.ts';
import type { Logger } from '../ports/logger.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import { Consumer } from '../consumer/consumer.ts';
import type { ConsumerConfig } from '../consumer/consumer-config.ts';
import type { DeferRules } from '../consumer/middleware/defer.ts';
import type { SequenceStore } from '../ports/sequence-store.ts';

export type ConsumerOptions = ConsumerConfig & {
  /** The business database: effects, inbox rows and dead letters commit here. */
  store: Pick<Store, 'db' | 'inbox' | 'deadLetters'> & {
    /** Sequence marks and gaps (C9): `postgres(…)` and `pglite(…)` have them; needed with `control`. */
    sequences?: SequenceStore;
  };
  /** Where records come from; its publisher (when it has one) sends retry copies and `.dlq` copies. */
  transport: Pick<Transport, 'subscriber'> & Partial<Pick<Transport, 'publisher'>>;
  /** Optional fast path for duplicates (`redis(url)`); correctness never depends on it. */
  cache?: Pick<Cache, 'inboxCache'>;
  registry?: Registry;
  /** Serve /healthz, /readyz and /metrics from `start` to `stop` (host default 0.0.0.0; port 0 picks one). */
  health?: { port: number; host?: string };
  /**
   * Process spans (docs/observability.md). Default: OpenTelemetry through `@opentelemetry/api` when it is
   * installed (spans are recorded once the application registers an SDK), else none. `false` turns it off.
   */
  tracing?: Tracing | false;
  /** Where operational events go as structured lines (a pino logger is one); default none. */
  logger?: Logger;
  /**
   * Non-core types set aside while a degrade switch is on: each listed type goes, unapplied, to its standby
   * topic while its switch is on, to be drained later (docs/operations.md, "Backlog and degrading at peak").
   * Needs a transport with a publisher. `{ switches: new DegradeSwitches(store), types: { 'points.bonus': { switch:
   * 'non-core', topic: 'orders.standby' } } }`.
   */
  defer?: DeferRules;
};

/**
 * The consumer runtime: each message's business effect applied once, on at-least-once delivery. Wired
 * here, in a composition root, because `health` needs the HTTP probe server, an adapter.
 */
export function createConsumer(options: ConsumerOptions): Consumer {
  const { store, transport, cache, registry, health, tracing, logger, defer, ...config } = options ?? ({} as ConsumerOptions);
  if (typeof store?.db?.query !== 'function' || store.inbox === undefined || store.deadLetters === undefined) {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'createConsumer needs a store: createConsumer({ store: postgres(…), transport: kafka(…), groupId, topics })',
      {
        details: { field: 'store' },
      },
    );
  }
  if (typeof transport?.subscriber?.subscribe !== 'function') {
    throw new ZerolossError(
      'ZL_INVALID_CONFIG',
      'createConsumer needs a transport: createConsumer({ store, transport: kafka(…), groupId, topics })',
      {
        details: { field: 'transport' },
      },
    );
  }
  const kind = (transport as Partial<Pick<Transport, 'kind'>>).kind;
  const consumer = new Consumer({
    subscriber: transport.subscriber,
    publisher: transport.publisher,
    db: store.db,
    inbox: store.inbox,
    deadLetters: store.deadLetters,
    sequences: config.control ? store.sequences : undefined,
    cache: cache?.inboxCache,
    registry,
    health,
    startHealthServer,
    config,
    tracing: tracing === false ? noTracing : (tracing ?? otelTracing({ system: kind })),
    defer,
  });
  if (logger) logConsumerEvents(consumer, logger.child({ component: 'consumer', group: consumer.config.groupId }));
  return consumer;
}

/**
 * Writes the consumer's events as log lines: trouble at warn or error with the message id, topic, partition
 * and offset; each processed record and partition changes at debug.
 */
function logConsumerEvents(consumer: Consumer, log: Logger): void {
  const at = (e: { topic: string; partition: number; offset: bigint }) => ({
    topic: e.topic,
    partition: e.partition,
    offset: e.offset.toString(),
  });
  consumer.on('error', (error) => log.error({ err: error, code: (error as { code?: unknown }).code }, error.message));
  consumer.on('processed', (e) =>
    log.debug({ messageId: e.messageId, type: e.type, key: e.key, ...at(e), outcome: e.outcome, via: e.via }, 'processed'),
  );
  consumer.on('retry', (e) =>
    log.warn(
      { messageId: e.messageId, type: e.type, attempt: e.attempt, mode: e.mode, delayMs: e.delayMs, error: e.error },
      'handler failed: will retry',
    ),
  );
  consumer.on('dead-letter', (e) =>
    log.warn(
      { messageId: e.messageId, type: e.type, ...at(e), code: e.errorCode, reason: e.reason, attempts: e.attempts, deadLetterId: e.id },
      'dead-lettered',
    ),
  );
  consumer.on('copy-rejected', (e) =>
    log.error({ messageId: e.messageId, ...at(e), kind: e.kind, copyTopic: e.copyTopic, error: e.error }, 'copy refused by its topic'),
  );
  consumer.on('message-id-conflict', (e) =>
    log.error(
      { messageId: e.messageId, ...at(e), digest: e.digest, appliedDigest: e.appliedDigest },
      'another message under an applied message id',
    ),
  );
  consumer.on('poison-suspect', (e) => log.warn({ messageId: e.messageId, ...at(e), crashes: e.crashes }, 'poison suspect: runs alone'));
  consumer.on('sequence-gap', (e) => log.warn({ ...e }, 'sequence gap'));
  consumer.on('sequence-gap-alarm', (g) =>
    log.error(
      { topic: g.topic, partition: g.partition, producerId: g.producerId, key: g.key, fromSeq: g.fromSeq, toSeq: g.toSeq, tail: g.tail },
      'sequence gap still open',
    ),
  );
  consumer.on('sequence-repair-requested', (g) =>
    log.warn(
      { topic: g.topic, producerId: g.producerId, key: g.key, fromSeq: g.fromSeq, toSeq: g.toSeq, request: g.repairRequests + 1 },
      'resend requested',
    ),
  );
  consumer.on('assigned', (partitions) => log.info({ partitions }, 'partitions assigned'));
  consumer.on('revoked', (partitions) => log.info({ partitions }, 'partitions revoked'));
}
