import { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { backoffDelay } from '../core/backoff.ts';
import { parseConfig } from '../core/config.ts';
import { errorSummary, isClientRefused, ZerolossError } from '../core/errors.ts';
import { partitionFor } from '../core/partition-for.ts';
import { type Logger, silentLogger } from '../ports/logger.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import type { PublishOutcome, Publisher } from '../ports/transport.ts';
import type { WalCommit, WalFailure, WalLedger, WalRow, WalStream, WalStreamSession } from '../ports/wal-stream.ts';
import { Relay, type RelayConfig } from './relay.ts';
import { startSendSpans } from './send-spans.ts';
import { type WalRelayConfig, type WalRelayEvents, walRelayConfigSchema } from './wal-relay-config.ts';
import { createWalRelayMetrics, type WalRelayMetrics } from './wal-relay-metrics.ts';

export { type WalRelayConfig, type WalRelayEvents, walRelayConfigSchema };

/** What a batch sends: a key's rows in commit order; `held` rows are recorded for the polling path unsent. */
interface Batch {
  commits: WalCommit[];
  rows: WalRow[];
  endLsn: string;
}

const keyOf = (row: WalRow) => `${row.record.topic}\u0000${row.record.key}`;

/**
 * The WAL relay (docs/wal-relay.md): sends committed outbox inserts in commit order as the slot streams
 * them, records the outcome in the outbox with one statement per batch, and only then confirms the
 * batch's last commit to the slot, so a crash replays (duplicates) and never skips. Rows that fail for
 * their own reasons, and the later rows of their key, go to the polling relay running beside it on the
 * rows the stream will not bring again. Standby instances retry the slot until its holder is gone.
 */
export class WalRelay extends EventEmitter<WalRelayEvents> {
  readonly config: Readonly<z.output<typeof walRelayConfigSchema>>;
  readonly retries: Relay;
  readonly #stream: WalStream;
  readonly #ledger: WalLedger;
  readonly #publisher: Publisher;
  readonly #tracing: Tracing;
  readonly #metrics: WalRelayMetrics;
  readonly #labels: { slot: string };
  #running = false;
  #main: Promise<void> | undefined;
  #session: WalStreamSession | undefined;
  #queue: WalCommit[] = [];
  #queuedRows = 0;
  #paused = false;
  #ended: Error | undefined | null = null;
  /** Sleeps in progress; `data` ones also end when a commit arrives or the stream ends. */
  #sleepers = new Set<{ data: boolean; done: () => void }>();
  /** Keys (topic NUL key) with a row the polling path must send first. */
  #held = new Set<string>();
  #heldRefreshedAt = 0;
  #holding = false;
  /** Batches taken from the queue and not yet confirmed to the slot. */
  #unconfirmed = 0;
  /** What was last said in a 'slot' event, so each change is said once. */
  #slotState: 'streaming' | 'standby' | undefined;
  readonly #log: Logger;

  constructor(options: {
    stream: WalStream;
    ledger: WalLedger;
    publisher: Publisher;
    registry?: Registry;
    config?: WalRelayConfig;
    /** Settings of the polling relay that sends failed rows (maxAttempts, backoff, instanceId...). */
    relay?: RelayConfig;
    /** Where both paths log (slot changes, batches at debug, errors, failed and parked rows); default silent. */
    logger?: Logger;
    /** A send span per record sent, here and on the polling path (`otelTracing()`); default none. */
    tracing?: Tracing;
  }) {
    super();
    this.config = parseConfig(walRelayConfigSchema, options.config ?? {}, 'wal relay');
    this.#stream = options.stream;
    this.#ledger = options.ledger;
    this.#publisher = options.publisher;
    this.#tracing = options.tracing ?? noTracing;
    // Failed rows are few: the polling path needs no tight poll.
    this.retries = new Relay({
      sources: [options.ledger.retrySource],
      publisher: options.publisher,
      registry: options.registry,
      config: { pollIntervalMs: 500, concurrency: 1, ...options.relay },
      logger: options.logger,
      tracing: options.tracing,
    });
    this.#log = (options.logger ?? silentLogger).child({
      component: 'relay',
      instance: this.retries.instanceId,
      slot: options.stream.slot,
    });
    this.on('slot', (e) =>
      this.#log.info({ state: e.state }, e.state === 'streaming' ? 'reading the slot' : 'standing by: another instance holds the slot'),
    );
    this.on('batch', (b) => this.#log.debug({ ...b }, 'wal batch'));
    this.retries.on('error', (e) => this.emit('error', e));
    this.retries.on('parked', (e) => this.emit('parked', e));
    this.#metrics = createWalRelayMetrics(this.retries.registry);
    this.#labels = { slot: this.#stream.slot };
    for (const c of [
      this.#metrics.sent,
      this.#metrics.resent,
      this.#metrics.failed,
      this.#metrics.heldBack,
      this.#metrics.acknowledged,
      this.#metrics.recordFailures,
    ]) {
      c.inc(this.#labels, 0);
    }
    this.#metrics.holding.set(this.#labels, 0);
    this.on('error', () => {});
  }

  /** Logged and emitted; the polling path's errors are logged by it and only re-emitted here. */
  #error(error: Error): void {
    this.#log.error({ err: error, code: (error as { code?: unknown }).code }, error.message);
    this.emit('error', error);
  }

  get registry(): Registry {
    return this.retries.registry;
  }

  get instanceId(): string {
    return this.retries.instanceId;
  }

  /** Whether this instance reads the slot now (false while it stands by). */
  get holdingSlot(): boolean {
    return this.#holding;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.retries.start();
    this.#main = this.#run();
  }

  /** Finishes the batch in flight (recorded and confirmed), then closes the stream. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wakeSleepers(false);
    await this.#main;
    await this.retries.stop();
  }

  async #run(): Promise<void> {
    let errorDelay = 0;
    while (this.#running) {
      try {
        await this.#readSlot();
        errorDelay = 0;
      } catch (error) {
        const busy = error instanceof ZerolossError && error.code === 'ZL_LOCK_BUSY';
        if (busy) {
          if (this.#slotState !== 'standby') this.emit('slot', { slot: this.#stream.slot, state: 'standby' });
          this.#slotState = 'standby';
          this.#setHolding(false);
          errorDelay = this.config.standbyRetryMs;
        } else {
          this.#error(error as Error);
          this.#setHolding(false);
          errorDelay = Math.min(Math.max(errorDelay * 2, 200), 5_000);
          // A missing slot needs a person: keep trying slowly, saying why each time.
          if (error instanceof ZerolossError && !error.retryable) errorDelay = 5_000;
        }
        await this.#sleep(errorDelay);
      }
    }
  }

  /** One reading of the slot: from its confirmed position until the stream ends or the relay stops. */
  async #readSlot(): Promise<void> {
    this.#queue = [];
    this.#queuedRows = 0;
    this.#unconfirmed = 0;
    this.#paused = false;
    this.#ended = null;
    const session = await this.#stream.open({
      commit: (commit) => this.#enqueue(commit),
      caughtUp: () => this.#queue.length === 0 && this.#unconfirmed === 0,
      end: (error) => {
        this.#ended = error;
        this.#wakeSleepers(true);
      },
    });
    this.#session = session;
    this.#setHolding(true);
    this.#slotState = 'streaming';
    this.emit('slot', { slot: this.#stream.slot, state: 'streaming' });
    let recording: Promise<void> | undefined;
    try {
      this.#held = await this.#ledger.heldKeys();
      this.#heldRefreshedAt = Date.now();
      while (this.#running && this.#ended === null) {
        const batch = this.#take();
        if (batch) this.#unconfirmed++;
        if (!batch) {
          await this.#sleep(1_000, true);
          continue;
        }
        const { sent, failed } = await this.#send(batch);
        if (!this.#running && sent.length === 0 && failed.length === 0 && batch.rows.length > 0) break;
        // Record and confirm in batch order; the next batch is published while this one is recorded.
        const previous = recording;
        recording = (async () => {
          await previous;
          await this.#record(batch, sent, failed);
          await session.acknowledge(batch.endLsn);
          this.#unconfirmed--;
          this.#metrics.acknowledged.inc(this.#labels, batch.commits.length);
        })();
        // A batch that cannot be recorded or confirmed ends this reading; the next one replays from the slot.
        recording.catch((error) => {
          this.#ended ??= error as Error;
          this.#wakeSleepers(true);
        });
        // Keys leave the held set only while no record is in flight, so a refresh cannot miss a key
        // this relay is recording as failed right now.
        if (this.#held.size > 0 && Date.now() - this.#heldRefreshedAt >= this.config.heldKeysRefreshMs) {
          await recording;
          await this.#refreshHeld();
        }
      }
      await recording;
    } finally {
      await recording?.catch(() => {});
      this.#session = undefined;
      await session.close();
    }
    if (this.#ended) throw this.#ended;
  }

  #enqueue(commit: WalCommit): void {
    this.#queue.push(commit);
    this.#queuedRows += commit.rows.length;
    this.#metrics.buffered.set(this.#labels, this.#queuedRows);
    if (!this.#paused && this.#queuedRows >= this.config.maxBufferedRows) {
      this.#paused = true;
      this.#session?.pause();
    }
    this.#wakeSleepers(true);
  }

  /** Whole transactions up to walBatchSize rows (at least one); undefined when none is waiting. */
  #take(): Batch | undefined {
    if (this.#queue.length === 0) return undefined;
    const commits: WalCommit[] = [];
    const rows: WalRow[] = [];
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as WalCommit;
      if (commits.length > 0 && rows.length + next.rows.length > this.config.walBatchSize) break;
      this.#queue.shift();
      commits.push(next);
      for (const row of next.rows) rows.push(row);
    }
    this.#queuedRows -= rows.length;
    this.#metrics.buffered.set(this.#labels, this.#queuedRows);
    if (this.#paused && this.#queuedRows < this.config.maxBufferedRows / 2) {
      this.#paused = false;
      this.#session?.resume();
    }
    return { commits, rows, endLsn: (commits[commits.length - 1] as WalCommit).endLsn };
  }

  /**
   * Publishes the batch's rows of keys not held. An outage (no broker, or this client refused) and other
   * retryable failures are retried in place, the latter `inPlaceAttempts` times; a row that still fails,
   * or fails for good, goes to the polling path, and every later row of its key with it.
   */
  async #send(batch: Batch): Promise<{ sent: Array<{ ref: string; partition?: number; offset?: bigint }>; failed: WalFailure[] }> {
    const sent: Array<{ ref: string; partition?: number; offset?: bigint }> = [];
    const failed: WalFailure[] = [];
    let pending: WalRow[] = [];
    for (const row of batch.rows) {
      if (this.#held.has(keyOf(row))) failed.push(heldBack(row));
      else pending.push(row);
    }
    let attempt = 0;
    while (pending.length > 0) {
      attempt++;
      const outcomes = await this.#publish(pending, attempt);
      // A refusal needs a person (credentials, certificate): said every round, while the stream waits.
      const refused = outcomes.find((o) => !o.ok && o.attempted && isClientRefused(o.error));
      if (refused && !refused.ok) this.#error(refused.error);
      const retry: WalRow[] = [];
      /** Per key whose row failed in this call: retry its later rows in place too, or hold them back. */
      const keyFate = new Map<string, 'retry' | 'held'>();
      pending.forEach((row, i) => {
        const key = keyOf(row);
        const outcome = outcomes[i];
        const fate = keyFate.get(key);
        if (fate === 'retry') retry.push(row);
        else if (fate === 'held') failed.push(heldBack(row));
        else if (outcome?.ok) sent.push({ ref: row.ref, partition: outcome.partition, offset: outcome.offset });
        else if (this.#retryInPlace(outcome, attempt)) {
          keyFate.set(key, 'retry');
          retry.push(row);
        } else {
          keyFate.set(key, 'held');
          this.#held.add(key);
          const error = outcome && !outcome.ok ? outcome.error : new ZerolossError('ZL_SEND_FAILED', 'publisher gave no outcome');
          failed.push({
            ref: row.ref,
            error: errorSummary(error),
            delayMs: backoffDelay(1, this.retries.config.backoff),
            charge: error.code !== 'ZL_TOPIC_UNAVAILABLE',
            heldBack: false,
          });
        }
      });
      pending = retry;
      if (pending.length > 0) {
        if (!this.#running) break;
        await this.#sleep(Math.min(200 * 2 ** Math.min(attempt, 5), 5_000));
        if (!this.#running) break;
      }
    }
    // Stopping in an outage: what was not sent is neither recorded nor confirmed; the next holder resends it.
    if (pending.length > 0) return { sent: [], failed: [] };
    return { sent, failed };
  }

  #retryInPlace(outcome: PublishOutcome | undefined, attempt: number): boolean {
    if (!outcome || outcome.ok) return attempt < this.config.inPlaceAttempts;
    if (!outcome.attempted) return true;
    const error = outcome.error;
    if (error.code === 'ZL_TRANSPORT_UNAVAILABLE' || isClientRefused(error)) return true;
    return error.retryable && error.code !== 'ZL_TOPIC_UNAVAILABLE' && attempt < this.config.inPlaceAttempts;
  }

  /** One publish per group of keys, at once; outcomes in `rows` order. */
  async #publish(rows: WalRow[], attempt: number): Promise<PublishOutcome[]> {
    const lanes = Math.min(this.config.publishConcurrency, rows.length);
    if (lanes <= 1) return this.#publishGroup(rows, attempt);
    const groups: number[][] = Array.from({ length: lanes }, () => []);
    rows.forEach((row, i) => {
      groups[partitionFor(keyOf(row), lanes)]?.push(i);
    });
    const outcomes: PublishOutcome[] = new Array(rows.length);
    await Promise.all(
      groups.map(async (indexes) => {
        if (indexes.length === 0) return;
        const result = await this.#publishGroup(
          indexes.map((i) => rows[i] as WalRow),
          attempt,
        );
        indexes.forEach((index, j) => {
          outcomes[index] = result[j] as PublishOutcome;
        });
      }),
    );
    return outcomes;
  }

  /** `attempt` counts this batch's sends in place; the polling path counts its own. */
  async #publishGroup(rows: WalRow[], attempt: number): Promise<PublishOutcome[]> {
    const spans = this.#tracing.active()
      ? startSendSpans(
          this.#tracing,
          rows.map((r) => ({ record: r.record, attempt })),
        )
      : undefined;
    let outcomes: PublishOutcome[];
    try {
      outcomes = await this.#publisher.publish(spans ? spans.records : rows.map((r) => r.record));
    } catch (error) {
      // A publisher must not throw; if one does, every record failed this attempt.
      const failure = new ZerolossError('ZL_SEND_FAILED', errorSummary(error), { retryable: true });
      outcomes = rows.map(() => ({ ok: false, error: failure, attempted: true }));
    }
    spans?.end(outcomes);
    return outcomes;
  }

  /** Retries until recorded (the database may be restarting): a batch is confirmed only once recorded. */
  async #record(batch: Batch, sent: Array<{ ref: string; partition?: number; offset?: bigint }>, failed: WalFailure[]): Promise<void> {
    let delay = 100;
    for (;;) {
      try {
        const { sent: changed } = await this.#ledger.record(sent, failed);
        const resent = sent.length - changed;
        const heldBackCount = failed.filter((f) => f.heldBack).length;
        this.#metrics.sent.inc(this.#labels, changed);
        this.#metrics.resent.inc(this.#labels, resent);
        this.#metrics.failed.inc(this.#labels, failed.length - heldBackCount);
        this.#metrics.heldBack.inc(this.#labels, heldBackCount);
        this.emit('batch', {
          rows: batch.rows.length,
          sent: changed,
          resent,
          failed: failed.length - heldBackCount,
          heldBack: heldBackCount,
          endLsn: batch.endLsn,
        });
        return;
      } catch (error) {
        // P3: the broker answered but the answer is not recorded: an alert (counter and error log), then a
        // retry; the slot is confirmed only once this batch is recorded.
        const rows = sent.length + failed.length;
        this.#metrics.recordFailures.inc(this.#labels, rows);
        this.#log.error(
          { err: error, code: (error as { code?: unknown }).code, rows },
          `the broker answered ${rows} messages but recording them failed (retrying): ${(error as Error).message}`,
        );
        this.emit('error', error as Error);
        if (!this.#running || this.#ended !== null) throw error;
        await this.#sleep(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Keys that were held at the start of the query and have no waiting row now rejoin the stream. */
  async #refreshHeld(): Promise<void> {
    const before = new Set(this.#held);
    const now = await this.#ledger.heldKeys();
    for (const key of before) if (!now.has(key)) this.#held.delete(key);
    for (const key of now) this.#held.add(key);
    this.#heldRefreshedAt = Date.now();
  }

  #setHolding(holding: boolean): void {
    this.#holding = holding;
    this.#metrics.holding.set(this.#labels, holding ? 1 : 0);
  }

  /** Waits `ms`, or less when the relay stops or (with `data`) a commit arrives or the stream ends. */
  #sleep(ms: number, data = false): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = { data, done: () => {} };
      const timer = setTimeout(() => sleeper.done(), ms);
      sleeper.done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(sleeper);
        resolve();
      };
      this.#sleepers.add(sleeper);
    });
  }

  #wakeSleepers(dataOnly: boolean): void {
    for (const sleeper of [...this.#sleepers]) if (!dataOnly || sleeper.data) sleeper.done();
  }
}

function heldBack(row: WalRow): WalFailure {
  return {
    ref: row.ref,
    error: 'held back: an earlier message of its key waits for the polling path',
    delayMs: 0,
    charge: false,
    heldBack: true,
  };
}
