import type { Registry } from 'prom-client';
import { HEADER, type IncomingRecord } from '../core/envelope.ts';
import { parseConfig } from '../core/config.ts';
import { HookEmitter } from '../core/hook-emitter.ts';
import { ZerolossError, errorSummary } from '../core/errors.ts';
import type { HealthServer, StartHealthServer } from '../ports/readiness.ts';
import type { DeadLetterWriter } from '../ports/dead-letter-store.ts';
import type { InboxCache } from '../ports/inbox-cache.ts';
import type { InboxStore, StartLog } from '../ports/inbox-store.ts';
import type { Database } from '../ports/sql-executor.ts';
import type { Tracing } from '../ports/tracing.ts';
import type { SequenceStore } from '../ports/sequence-store.ts';
import type { Publisher, ReceivedBatch, Subscriber, Subscription } from '../ports/transport.ts';
import { type ControlListener, ControlSender, listenControl } from '../operations/control-channel.ts';
import { type ConsumerConfig, consumerConfigSchema, type ResolvedConsumerConfig } from './consumer-config.ts';
import type { ConsumerEvents } from './consumer-events.ts';
import { consumerReadiness } from './consumer-readiness.ts';
import { type ConsumerMetrics, createConsumerMetrics } from './consumer-metrics.ts';
import { buildConsumerChain } from './consumer-chain.ts';
import { AbandonedError, type Delivery, RETRY_HEADER, isRetryTopic, newDelivery, retryTopic } from './delivery.ts';
import { GapDetector } from './gap-detector.ts';
import { GapWatcher } from './gap-watcher.ts';
import { type Handler, type HandlerOptions, HandlerRegistry } from './handler-registry.ts';
import { type LaneControl, KeyLanes } from './key-lanes.ts';
import type { DeferRules } from './middleware/defer.ts';
import { type PartitionRef, OffsetTracker, partitionId } from './offset-tracker.ts';
import { ReceiptReporter } from './receipt-reporter.ts';
import { settleWithin, within } from '../core/time-bounds.ts';
import { loadStored } from './stored-offsets.ts';

export interface ConsumerOptions {
  /** Where records come from (Kafka, or the embedded Postgres log). */
  subscriber: Subscriber;
  /** The business database: effects, inbox and dead letters commit here. */
  db: Database;
  /** Sends retry copies (`<topic>.retry.<n>`) and dead letters (`<topic>.dlq`). Without it: blocking retries, DLQ table only. */
  publisher?: Publisher;
  /** Optional Redis fast path; correctness never depends on it. */
  cache?: InboxCache;
  registry?: Registry;
  config: ConsumerConfig;
  /** The inbox (applied keys, handler-start marks, database offsets), in the same database as `db`. */
  inbox: InboxStore & StartLog;
  /** Where dead letters are recorded (the dead_letter table), in the same database as `db`. */
  deadLetters: DeadLetterWriter;
  /** Serve /healthz, /readyz and /metrics from `start` to `stop` (host default 0.0.0.0; port 0 picks one). */
  health?: { port: number; host?: string };
  /** Serves `health`; `createConsumer` passes the HTTP probe server. */
  startHealthServer?: StartHealthServer;
  /** Process spans; `createConsumer` passes `otelTracing()`. */
  tracing?: Tracing;
  /** Non-core types set aside to a standby topic while a degrade switch is on (middleware/defer.ts); needs `publisher`. */
  defer?: DeferRules;
  /** Sequence marks and gaps (C9), in the same database as `db`; needed with `config.control`. */
  sequences?: SequenceStore;
}

interface PartitionRun {
  controller: AbortController;
  running: Set<Promise<void>>;
}

/**
 * The consumer runtime: every message's business effect applied once, on at-least-once delivery.
 *
 * Records are processed concurrently across keys and in order within a key (C3: a key's consecutive ready
 * messages may share one effect transaction, handlers in key order); offsets are committed
 * manually, only up to the smallest unfinished offset of each partition (C1, C2). Each record goes through
 * the consumer chain, whose stages and order are listed in consumer-chain.ts:
 *
 *   offset progress → metrics → dead letter → decode → route → defer (optional) → cache (optional) → retry
 *     → each attempt: key order → poison guard → effect (transaction: inbox row, handler, commit)
 *
 * Sequence gaps (C9) are checked as records arrive, in partition order, before any of that.
 */
export class Consumer extends HookEmitter<ConsumerEvents> {
  readonly config: ResolvedConsumerConfig;
  readonly #options: ConsumerOptions;
  readonly #handlers: HandlerRegistry;
  readonly #metrics: ConsumerMetrics;
  readonly #inbox: InboxStore & StartLog;
  readonly #deadLetters: DeadLetterWriter;
  readonly #tracker = new OffsetTracker();
  readonly #gaps = new GapDetector();
  readonly #parts = new Map<string, PartitionRun>();
  readonly #committed = new Map<string, bigint>();
  #lanes: KeyLanes;
  #chain: ((d: Delivery) => Promise<void>) | undefined;
  #subscription: Subscription | undefined;
  #timers: NodeJS.Timeout[] = [];
  #committing: Promise<void> | undefined;
  #paused = false;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #healthServer: HealthServer | undefined;
  #controlSender: ControlSender | undefined;
  #controlListener: ControlListener | undefined;
  #gapWatcher: GapWatcher | undefined;
  #gapCheck: Promise<{ open: number; alarmed: number; requested: number }> | undefined;
  #receipts: ReceiptReporter | undefined;

  constructor(options: ConsumerOptions) {
    super();
    this.config = parseConfig(consumerConfigSchema, options.config, 'consumer');
    if (options.defer && !options.publisher) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'defer needs a publisher to send deferred records to their standby topic');
    }
    this.#options = options;
    this.#handlers = new HandlerRegistry(this.config.retry, this.config.minAcceptedVersions);
    this.#metrics = createConsumerMetrics(options.registry);
    this.#inbox = options.inbox;
    this.#deadLetters = options.deadLetters;
    // Up to a transaction's worth of one key's messages in progress at once (group commit along a key);
    // with offsets stored per effect, one at a time, so each stored offset is the contiguous one.
    this.#lanes = new KeyLanes(this.config.concurrency, (error) => this.#report(error), {
      depth: this.#storesOffsets ? 1 : this.config.batch.maxMessages,
    });
    const control = this.config.control;
    if (control && !options.sequences) {
      throw new ZerolossError('ZL_INVALID_CONFIG', "control needs the store's sequence marks (createConsumer passes store.sequences)", {
        details: { field: 'control' },
      });
    }
    if (control?.receipts && !options.publisher) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'control.receipts needs a publisher to send receipts on', {
        details: { field: 'control.receipts' },
      });
    }
    if (control?.autoRepair && !options.publisher) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'control.autoRepair needs a publisher to send resend requests on', {
        details: { field: 'control.autoRepair' },
      });
    }
    // An 'error' event without a listener would throw: the consumer reports trouble, it never dies of it.
    this.on('error', () => {});
  }

  /** Registers the handler of one message type (C5). Call before `start`. */
  handle<P = unknown>(type: string, handler: Handler<P>, options?: HandlerOptions<P>): this {
    if (this.#state !== 'new') throw new ZerolossError('ZL_INVALID_CONFIG', 'register handlers before start()');
    this.#handlers.register(type, handler, options);
    return this;
  }

  /**
   * Sends on the control channel (C9, O9) while the consumer runs with `control` and a publisher; other
   * features (receipts) send through it too.
   */
  get controlSender(): ControlSender | undefined {
    return this.#controlSender;
  }

  /** Looks at the open sequence gaps now (the consumer does every `control.checkEveryMs`): alarms, repair requests. */
  async checkGaps(): Promise<{ open: number; alarmed: number; requested: number }> {
    const watcher = this.#gapWatcher;
    if (!watcher) return { open: 0, alarmed: 0, requested: 0 };
    // One check at a time: the timer fires every checkEveryMs whether or not the last check has finished.
    this.#gapCheck ??= watcher.tick().finally(() => {
      this.#gapCheck = undefined;
    });
    const result = await this.#gapCheck;
    this.#metrics.sequenceOpenGaps.set({ group: this.config.groupId }, result.open);
    return result;
  }

  get registry(): Registry {
    return this.#metrics.registry;
  }

  /** Main topics plus the retry topics that types in `topic` retry mode need. */
  get subscribedTopics(): string[] {
    const levels = Math.max(
      0,
      ...this.#handlers.entries.filter((h) => h.retry.mode === 'topic' && this.#options.publisher).map((h) => h.retry.maxRetries),
    );
    const topics = [...this.config.topics];
    for (const topic of this.config.topics) for (let n = 1; n <= levels; n++) topics.push(retryTopic(topic, n));
    return topics;
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ZerolossError('ZL_INVALID_CONFIG', 'a consumer starts once');
    if (this.#handlers.types.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'register at least one handler before start()');
    // Listening first: a taken port fails start before joining the group, and probes see the join.
    if (this.#options.health) {
      const serve = this.#options.startHealthServer;
      if (!serve) throw new ZerolossError('ZL_INVALID_CONFIG', 'the health option needs a probe server (createConsumer passes one)');
      const checks = consumerReadiness(this, this.#options.db);
      this.#healthServer = await serve({ ...this.#options.health, registry: this.registry, checks });
    }
    this.#state = 'running';
    this.#chain = buildConsumerChain({
      config: this.config,
      handlers: this.#handlers,
      db: this.#options.db,
      inbox: this.#inbox,
      deadLetters: this.#deadLetters,
      publisher: this.#options.publisher,
      cache: this.#options.cache,
      sequences: this.config.control ? this.#options.sequences : undefined,
      tracker: this.#tracker,
      metrics: this.#metrics,
      reporter: this,
      tracing: this.#options.tracing,
      defer: this.#options.defer,
      onFinished: () => this.#resumeBelowBatchSize(),
      report: (error) => this.#report(error),
    }).run;
    try {
      this.#subscription = await this.#options.subscriber.subscribe({
        groupId: this.config.groupId,
        topics: this.subscribedTopics,
        onRecords: (batch) => this.#onRecords(batch),
        onRevoke: (partitions) => this.#onRevoke(partitions),
        onAssign: (partitions) => this.#onAssign(partitions),
        onError: (error) => this.#report(error),
        // Database offsets: each assigned partition starts where its effects say, not at the broker's offset.
        ...(this.#storesOffsets ? { startOffsets: (parts) => loadStored(this.#inbox, this.config.groupId, parts) } : {}),
      });
    } catch (error) {
      // A failed start leaves nothing listening: an open port would keep the process alive and answer probes.
      await this.#healthServer?.close();
      this.#healthServer = undefined;
      throw error;
    }
    if (this.#paused) this.#subscription.pause();
    this.#every(this.config.commitIntervalMs, () => this.#commitInBackground());
    if (this.config.lagIntervalMs > 0 && this.#subscription.lag) this.#every(this.config.lagIntervalMs, () => this.#refreshLag());
    if (this.config.inbox.cleanupIntervalMs > 0) this.#every(this.config.inbox.cleanupIntervalMs, () => this.cleanupInbox());
    await this.#startControl();
  }

  /**
   * The consumer's side of the control channel (C9): a sender for resend requests, the watcher of open gaps
   * and, reading the channel in the group `<groupId>.control`, the producer marks that reveal a loss at the
   * tail. A channel that cannot be read is reported, never fatal: gaps between records are still found.
   */
  async #startControl(): Promise<void> {
    const control = this.config.control;
    const sequences = this.#options.sequences;
    if (!control || !sequences) return;
    const groupId = this.config.groupId;
    const publisher = this.#options.publisher;
    if (publisher) {
      this.#controlSender = new ControlSender({ publisher, topic: control.topic, onError: (error) => this.#report(error) });
    }
    const sender = this.#controlSender;
    if (sender && control.receipts) {
      const reporter = new ReceiptReporter({
        sender,
        groupId,
        maxBatch: control.receiptBatch,
        intervalMs: control.receiptIntervalMs,
        onError: (error) => this.#report(error),
      });
      this.#receipts = reporter;
      this.on('processed', reporter.processed);
    }
    const watcher = new GapWatcher({
      store: sequences,
      groupId,
      topics: this.config.topics,
      settings: control,
      send: sender && ((message) => sender.send(message)),
      finishedBelow: (topic, partition) => this.#tracker.commitPoint(topic, partition),
      onAlarm: (gap) => {
        this.#metrics.sequenceGapAlarms.inc({ group: groupId, topic: gap.topic });
        this.emit('sequence-gap-alarm', gap);
      },
      onRepairRequested: (gap) => {
        this.#metrics.sequenceRepairRequests.inc({ group: groupId, topic: gap.topic });
        this.emit('sequence-repair-requested', gap);
      },
    });
    this.#gapWatcher = watcher;
    this.#every(control.checkEveryMs, () => this.checkGaps());
    if (!control.listen) return;
    this.#controlListener = await listenControl({
      subscriber: this.#options.subscriber,
      groupId: `${groupId}.control`,
      topic: control.topic,
      handlers: { 'producer-marks': async (message) => watcher.onProducerMarks(message) },
      onInvalid: (error) => {
        this.#metrics.controlInvalid.inc({ group: groupId });
        this.#report(error);
      },
      onError: (error) => this.#report(error),
    }).catch((error: unknown) => {
      this.#report(new ZerolossError('ZL_UNKNOWN', `control channel not read: ${errorSummary(error)}`, { cause: error }));
      return undefined;
    });
  }

  /** Read-only state for probes, and where the `health` option's server listens. */
  health(): { state: string; subscribed: boolean; endpoint: { host: string; port: number } | undefined } {
    const server = this.#healthServer;
    return {
      state: this.#state,
      subscribed: this.#subscription !== undefined,
      endpoint: server && { host: server.host, port: server.port },
    };
  }

  /**
   * Stops taking records, lets running handlers finish (up to `stopTimeoutMs`; waits such as retry delays
   * are abandoned), commits what finished and leaves the group. Unfinished records are redelivered later.
   */
  async stop(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#state = 'stopping';
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#subscription?.pause();
    const running = [...this.#parts.values()].flatMap((p) => {
      p.controller.abort();
      return [...p.running];
    });
    await settleWithin(running, this.config.stopTimeoutMs);
    await this.#committing;
    await this.#commit(undefined, this.config.commitTimeoutMs).catch((error) => this.#report(error));
    await this.#subscription?.close().catch((error: unknown) => this.#report(error));
    await this.#controlListener?.close().catch((error: unknown) => this.#report(error));
    if (this.#receipts) this.off('processed', this.#receipts.processed);
    this.#receipts?.close();
    await this.#controlSender?.close().catch((error: unknown) => this.#report(error));
    this.#state = 'stopped';
    await this.#healthServer?.close();
  }

  /** Deletes inbox rows older than the retention; returns how many. Runs periodically too (`inbox.cleanupIntervalMs`). */
  async cleanupInbox(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.#inbox.cleanup(this.config.groupId, this.config.inbox.retentionMs, 10_000);
      total += n;
      if (n < 10_000) return total;
    }
  }

  /** Current metric values by name (summed over labels), for callers that do not scrape Prometheus. */
  async metrics(): Promise<Record<string, number>> {
    await this.#refreshLag().catch(() => {});
    const out: Record<string, number> = {};
    for (const metric of await this.#metrics.registry.getMetricsAsJSON()) {
      if (!metric.name.startsWith('zeroloss_consumer')) continue;
      for (const v of metric.values as Array<{ value: number; metricName?: string; labels: Record<string, unknown> }>) {
        if (v.labels.group !== undefined && v.labels.group !== this.config.groupId) continue;
        const name = v.metricName ?? metric.name;
        if (name.endsWith('_bucket')) continue;
        out[name] = (out[name] ?? 0) + v.value;
      }
    }
    return out;
  }

  get #storesOffsets(): boolean {
    return this.config.offsetStore === 'database';
  }

  #onRecords(batch: ReceivedBatch): void {
    if (this.#state !== 'running') return;
    const part = this.#partition(batch.topic, batch.partition);
    const sequenced = this.config.gapDetection && !isRetryTopic(batch.topic);
    for (const record of batch.records) {
      const epoch = this.#tracker.add(record.topic, record.partition, record.offset);
      if (epoch === undefined) continue;
      if (sequenced) this.#observeSequence(record);
      // With offsets stored per effect, a partition is one lane: each stored offset is then the contiguous one.
      const lane = this.#storesOffsets
        ? `${record.topic}\u0000${record.partition}`
        : `${record.topic}\u0000${record.partition}\u0000${record.key}`;
      this.#lanes.push(lane, (control) => this.#run(record, epoch, part, control));
    }
    this.#metrics.inFlight.set({ group: this.config.groupId }, this.#tracker.pending);
    if (!this.#paused && this.#tracker.pending >= this.config.batchSize) {
      this.#paused = true;
      this.#subscription?.pause();
    }
  }

  async #run(record: IncomingRecord, epoch: number, part: PartitionRun, control: LaneControl): Promise<void> {
    const { signal } = part.controller;
    if (this.#state !== 'running' || signal.aborted || !this.#tracker.isCurrent(record.topic, record.partition, epoch)) return;
    const work = this.#process(record, epoch, signal, control);
    part.running.add(work);
    try {
      await work;
    } finally {
      part.running.delete(work);
    }
  }

  /** Runs the record through the chain; its offset stage records it finished, unless it throws. */
  async #process(record: IncomingRecord, epoch: number, signal: AbortSignal, control: LaneControl): Promise<void> {
    // A retry copy waits for its due time in its lane, without holding a concurrency slot.
    const due = Number(record.headers[RETRY_HEADER.notBefore]);
    if (isRetryTopic(record.topic) && due > Date.now() && !(await control.sleep(due - Date.now(), signal))) return;
    const run = this.#chain as (d: Delivery) => Promise<void>;
    try {
      await run(newDelivery(record, { groupId: this.config.groupId, signal, lane: control, epoch }));
    } catch (error) {
      if (!(error instanceof AbandonedError)) {
        // Not finished, so never committed past: it comes back after the next rebalance or restart.
        this.#report(
          new ZerolossError(
            'ZL_UNKNOWN',
            `record ${record.topic}/${record.partition}/${record.offset} could not be finished: ${errorSummary(error)}`,
            {
              cause: error,
            },
          ),
        );
      }
    }
  }

  #observeSequence(record: IncomingRecord): void {
    const producerId = record.headers[HEADER.producerId] ?? '';
    const seq = Number(record.headers[HEADER.seq]);
    if (!Number.isSafeInteger(seq)) return;
    const event = this.#gaps.observe(record.topic, record.partition, producerId, record.key, seq);
    if (!event) return;
    const labels = { group: this.config.groupId, topic: record.topic };
    if (event.kind === 'gap') {
      this.#metrics.sequenceGaps.inc(labels);
      this.#metrics.sequenceMissing.inc(labels, event.missing);
      this.emit('sequence-gap', event);
    } else {
      this.#metrics.sequenceDuplicates.inc(labels);
      this.emit('sequence-duplicate', event);
    }
  }

  #partition(topic: string, partition: number): PartitionRun {
    const id = partitionId(topic, partition);
    let part = this.#parts.get(id);
    if (!part) {
      part = { controller: new AbortController(), running: new Set() };
      this.#parts.set(id, part);
    }
    return part;
  }

  #onAssign(partitions: PartitionRef[]): void {
    for (const p of partitions) {
      const id = partitionId(p.topic, p.partition);
      // Assigned again while its revoke still runs (a subscription bounds its wait for onRevoke, and may hand
      // the partition straight back): the old run is aborted and its tracking about to be dropped, and the
      // new assignment redelivers from the committed offset. It starts afresh: records past the old one's
      // last went to the aborted run and were skipped, then the revoke forgot the partition, and the next
      // commit moved past them.
      if (this.#parts.get(id)?.controller.signal.aborted) {
        this.#tracker.drop(p.topic, p.partition);
        this.#gaps.forgetPartition(p.topic, p.partition);
        this.#parts.delete(id);
      }
      this.#partition(p.topic, p.partition);
    }
    this.emit('assigned', partitions);
  }

  /**
   * Before partitions go to another consumer: waits end at once (abandoned), running transactions get up
   * to `revokeTimeoutMs` to finish, what finished is committed, and the partitions are forgotten. Nothing
   * past unfinished work is committed; an abandoned record is the next owner's to process.
   */
  async #onRevoke(partitions: PartitionRef[]): Promise<void> {
    this.emit('revoked', partitions);
    const running: Promise<void>[] = [];
    const revoked = new Map<string, PartitionRun | undefined>();
    for (const p of partitions) {
      const part = this.#parts.get(partitionId(p.topic, p.partition));
      revoked.set(partitionId(p.topic, p.partition), part);
      if (!part) continue;
      part.controller.abort();
      running.push(...part.running);
    }
    await settleWithin(running, this.config.revokeTimeoutMs);
    await this.#commit(partitions, this.config.commitTimeoutMs).catch((error) => this.#report(error));
    for (const p of partitions) {
      const id = partitionId(p.topic, p.partition);
      // Assigned again meanwhile (#onAssign): the new assignment's run and tracking are not this revoke's.
      if (this.#parts.get(id) !== revoked.get(id)) continue;
      this.#tracker.drop(p.topic, p.partition);
      this.#gaps.forgetPartition(p.topic, p.partition);
      this.#parts.delete(id);
      this.#committed.delete(id);
      // Lag of a partition we no longer own is its new owner's to report.
      this.#metrics.lag.remove({ group: this.config.groupId, topic: p.topic, partition: String(p.partition) });
    }
    this.#metrics.inFlight.set({ group: this.config.groupId }, this.#tracker.pending);
    this.#resumeBelowBatchSize();
  }

  /** A subscription paused at `batchSize` unfinished records resumes once fewer are. */
  #resumeBelowBatchSize(): void {
    if (this.#paused && this.#state === 'running' && this.#tracker.pending < this.config.batchSize) {
      this.#paused = false;
      this.#subscription?.resume();
    }
  }

  #commitInBackground(): void {
    if (this.#committing || this.#state !== 'running') return;
    this.#committing = this.#commit(undefined, undefined)
      .catch((error) => this.#report(error))
      .finally(() => {
        this.#committing = undefined;
      });
  }

  /** Commits each partition's commit point where it moved, then forgets the start marks below it. */
  async #commit(partitions: PartitionRef[] | undefined, timeoutMs: number | undefined): Promise<void> {
    const subscription = this.#subscription;
    if (!subscription) return;
    const offsets: Array<{ topic: string; partition: number; offset: bigint }> = [];
    for (const p of partitions ?? this.#tracker.partitions()) {
      const point = this.#tracker.commitPoint(p.topic, p.partition);
      const id = partitionId(p.topic, p.partition);
      if (point !== undefined && point > (this.#committed.get(id) ?? -1n))
        offsets.push({ topic: p.topic, partition: p.partition, offset: point });
    }
    if (offsets.length === 0) return;
    const commit = subscription.commit(offsets);
    await (timeoutMs === undefined ? commit : within(commit, timeoutMs, 'offset commit'));
    for (const o of offsets) {
      const id = partitionId(o.topic, o.partition);
      if ((this.#committed.get(id) ?? -1n) < o.offset) this.#committed.set(id, o.offset);
    }
    this.emit('committed', offsets);
    // Housekeeping: marks below a committed offset are never needed again.
    void Promise.all(offsets.map((o) => this.#inbox.forget(this.config.groupId, o.topic, o.partition, o.offset))).catch((error) =>
      this.#report(error),
    );
  }

  async #refreshLag(): Promise<void> {
    const lag = await this.#subscription?.lag?.();
    for (const entry of lag ?? []) {
      this.#metrics.lag.set({ group: this.config.groupId, topic: entry.topic, partition: String(entry.partition) }, Number(entry.lag));
    }
  }

  #every(ms: number, fn: () => unknown): void {
    const timer = setInterval(() => {
      Promise.resolve()
        .then(fn)
        .catch((error) => this.#report(error));
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  #report(error: unknown): void {
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
