import { HookEmitter } from '../core/hook-emitter.ts';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { backoffDelay } from '../core/backoff.ts';
import { parseConfig } from '../core/config.ts';
import { errorSummary, isClientRefused, ZerolossError } from '../core/errors.ts';
import { partitionFor } from '../core/partition-for.ts';
import { type Logger, silentLogger } from '../ports/logger.ts';
import type { RelaySource } from '../ports/outbox-store.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import type { PublishOutcome, Publisher } from '../ports/transport.ts';
import type { WalCommit, WalFailure, WalLedger, WalRow, WalSent, WalStream, WalStreamSession } from '../ports/wal-stream.ts';
import { Relay, type RelayConfig } from './relay.ts';
import { startSendSpans } from './send-spans.ts';
import { trustedOutcomes } from './trusted-outcomes.ts';
import { type WalRelayConfig, type WalRelayEvents, walRelayConfigSchema } from './wal-relay-config.ts';
import { createWalRelayMetrics, type WalRelayMetrics } from './wal-relay-metrics.ts';

export { type WalRelayConfig, type WalRelayEvents, walRelayConfigSchema };

/**
 * Transactions (or parts of a large one) taken from the queue together: published, recorded and confirmed
 * as one. `endLsn`: the end of the last whole transaction in it; undefined when it ends none.
 */
interface Batch {
  commits: WalCommit[];
  rows: WalRow[];
  endLsn: string | undefined;
}

/**
 * A row's key for lanes and holding back: the message key alone, whatever its topic. `backlog divert
 * --move-unsent` moves a waiting row (and new rows follow the rule at enqueue) to another topic: held by
 * topic and key, the key's new rows under the target topic were not held and streamed ahead of it. Over
 * one topic nothing changes; a key failing on one topic holds its rows on the others too (they take the
 * polling path, in order, at once).
 */
const keyOf = (row: WalRow) => row.record.key;

type SentRow = WalSent;

/** What one lane made of its part of a batch; `abandoned`: stopped in an outage, nothing of it may be recorded. */
interface LaneOutcome {
  sent: SentRow[];
  failed: WalFailure[];
  abandoned: boolean;
}

/**
 * One sequence of publishes for a fixed share of the keys (`partitionFor(key, lanes)`), batch after batch.
 * `tail` ends when the lane has settled its part of the last batch handed to it: the next batch's part
 * starts only then, so a key's rows are published in commit order, and a row failing in batch N has put
 * its key in the held set before the key's rows of batch N+1 are looked at (they are then held back,
 * never published ahead of it). Lanes do not wait for each other: that is what lets batches overlap.
 */
interface Lane {
  tail: Promise<void>;
  /** Gave up a part (stopping in an outage): every later part of this lane is given up unsent too. */
  abandoned: boolean;
}

const NOTHING: LaneOutcome = { sent: [], failed: [], abandoned: false };

/**
 * The WAL relay's polling path: it sends the rows that failed for their own reasons (few), so it needs no
 * tight poll and runs one round at a time. One per WalRelay, or one for all of a process's shards.
 */
export function walRetryRelay(options: {
  source: RelaySource;
  publisher: Publisher;
  registry?: Registry;
  relay?: RelayConfig;
  logger?: Logger;
  tracing?: Tracing;
}): Relay {
  return new Relay({
    sources: [options.source],
    publisher: options.publisher,
    registry: options.registry,
    config: { pollIntervalMs: 500, concurrency: 1, ...options.relay },
    logger: options.logger,
    tracing: options.tracing,
  });
}

/**
 * The WAL relay (docs/wal-relay.md): sends committed outbox inserts in commit order as the slot streams
 * them, records the outcome in the outbox with one statement per batch, and only then confirms the
 * batch's last commit to the slot, so a crash replays (duplicates) and never skips. Rows that fail for
 * their own reasons, and the later rows of their key, go to the polling relay running beside it on the
 * rows the stream will not bring again. Standby instances retry the slot until its holder is gone.
 */
export class WalRelay extends HookEmitter<WalRelayEvents> {
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
  /** Message keys with a row the polling path must send first. */
  #held = new Set<string>();
  #heldRefreshedAt = 0;
  #holding = false;
  #failingSince: number | undefined;
  /** What was last said in a 'slot' event, so each change is said once. */
  #slotState: 'streaming' | 'standby' | undefined;
  #standbyReason: string | undefined;
  readonly #log: Logger;
  readonly #ownsRetries: boolean;

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
    /**
     * A polling path for failed rows run by the caller (one for all of a process's shards, which share the
     * outbox); the relay then neither starts nor stops it, nor repeats its events. Default: its own.
     */
    retries?: Relay;
  }) {
    super();
    this.config = parseConfig(walRelayConfigSchema, options.config ?? {}, 'wal relay');
    this.#stream = options.stream;
    this.#ledger = options.ledger;
    this.#publisher = options.publisher;
    this.#tracing = options.tracing ?? noTracing;
    // Failed rows are few: the polling path needs no tight poll.
    this.#ownsRetries = options.retries === undefined;
    this.retries = options.retries ?? walRetryRelay({ ...options, source: options.ledger.retrySource });
    this.#log = (options.logger ?? silentLogger).child({
      component: 'relay',
      instance: this.retries.instanceId,
      slot: options.stream.slot,
    });
    this.on('slot', (e) =>
      this.#log.info(
        { state: e.state },
        e.state === 'streaming' ? 'reading the slot' : `standing by: ${e.reason ?? 'another instance holds the slot'}`,
      ),
    );
    this.on('batch', (b) => this.#log.debug({ ...b }, 'wal batch'));
    if (this.#ownsRetries) {
      this.retries.on('error', (e) => this.emit('error', e));
      this.retries.on('parked', (e) => this.emit('parked', e));
    }
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

  /**
   * Since when (Date.now()) opening the slot has failed for another reason than another reader holding it,
   * with no successful opening since; undefined while it reads, or only stands by. A sharded relay that
   * reads none of its shards leaves its group on this (wal-sharded-relay.ts).
   */
  get failingToReadSince(): number | undefined {
    return this.#failingSince;
  }

  /** Whether this instance reads the slot now (false while it stands by). */
  get holdingSlot(): boolean {
    return this.#holding;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    if (this.#ownsRetries) await this.retries.start();
    this.#main = this.#run();
  }

  /** Finishes the batches in flight (published, recorded and confirmed), then closes the stream. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wakeSleepers(false);
    await this.#main;
    this.#setHolding(false);
    if (this.#ownsRetries) await this.retries.stop();
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
          // Said again when the reason changes (held by another instance, being created, left unrecorded).
          const reason = (error as Error).message;
          if (this.#slotState !== 'standby' || this.#standbyReason !== reason) {
            this.emit('slot', { slot: this.#stream.slot, state: 'standby', reason });
          }
          this.#standbyReason = reason;
          this.#slotState = 'standby';
          this.#setHolding(false);
          errorDelay = this.config.standbyRetryMs;
        } else {
          this.#failingSince ??= Date.now();
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
    this.#paused = false;
    this.#ended = null;
    /**
     * Batches of this reading taken and not yet confirmed: the stream confirms a keepalive's position only
     * while none is out. Kept per reading, and every record of a reading settles before the next one
     * starts (the finally below): a record left running from an ended reading used to finish inside the
     * next one, count its batch off that reading's total, and let a keepalive confirm the slot past a batch
     * that was never sent.
     */
    let unconfirmed = 0;
    const session = await this.#stream.open({
      partRows: this.config.walBatchSize,
      commit: (commit) => this.#enqueue(commit),
      caughtUp: () => this.#queue.length === 0 && unconfirmed === 0,
      end: (error) => {
        this.#ended = error;
        this.#wakeSleepers(true);
      },
    });
    this.#session = session;
    this.#failingSince = undefined;
    this.#setHolding(true);
    this.#slotState = 'streaming';
    this.emit('slot', { slot: this.#stream.slot, state: 'streaming' });
    const lanes: Lane[] = Array.from({ length: this.config.publishConcurrency }, () => ({ tail: Promise.resolve(), abandoned: false }));
    /** Batches taken and not yet settled (confirmed, or given up); each leaves the set as it settles. */
    const inFlight = new Set<Promise<void>>();
    /** Batches whose lanes are still publishing them (not yet at their record statement). */
    const publishing = new Set<Promise<LaneOutcome>>();
    /** The confirmation of the last batch taken: it waits for every batch before it. */
    let confirming: Promise<void> | undefined;
    /** A batch was given up unsent (stopping in an outage): neither it nor any later batch is confirmed. */
    let gaveUp = false;
    try {
      this.#held = await this.#ledger.heldKeys();
      this.#heldRefreshedAt = Date.now();
      while (this.#running && this.#ended === null && !gaveUp) {
        // While a batch is being published, wait for a full batch (or that publish to end) rather than send
        // a small one: each batch costs a record statement. Once none is being published, whatever is queued
        // goes at once, while earlier batches are still recorded and confirmed: at a moderate rate a row then
        // waits for one publish ahead of it, not for a publish, a record statement and a confirmation.
        const full = this.#queuedRows >= this.config.walBatchSize;
        if (inFlight.size >= this.config.batchesInFlight || (publishing.size > 0 && !full)) {
          await Promise.race([...inFlight, ...publishing, ...(full ? [] : [this.#sleep(1_000, true)])]).catch(() => {});
          continue;
        }
        const batch = this.#take();
        if (!batch) {
          await this.#sleep(1_000, true);
          continue;
        }
        unconfirmed++;
        const sending = this.#send(batch, lanes);
        publishing.add(sending);
        const published = () => publishing.delete(sending);
        sending.then(published, published);
        // Batches are recorded as soon as their lanes are done, alongside one another (each updates its own
        // rows); a batch whose lanes gave up is not recorded: its rows were not all sent.
        const recorded = (async () => {
          const { sent, failed, abandoned } = await sending;
          if (abandoned) return false;
          await this.#record(batch, sent, failed);
          return true;
        })();
        // Confirmed in batch order: a batch's position covers every commit before it, so it is confirmed
        // only once every earlier batch is recorded and confirmed (record-before-acknowledge, per batch).
        const previous = confirming;
        const current = (async () => {
          const ok = await recorded;
          await previous;
          if (gaveUp) return;
          // Stopping in an outage: what was not sent is neither recorded nor confirmed; the next holder resends it.
          if (!ok) {
            gaveUp = true;
            return;
          }
          // A batch of parts only (the middle of a large transaction) is recorded and confirms nothing.
          if (batch.endLsn !== undefined) await session.acknowledge(batch.endLsn);
          unconfirmed--;
          this.#metrics.acknowledged.inc(this.#labels, batch.commits.filter((c) => c.endLsn !== undefined).length);
        })();
        confirming = current;
        inFlight.add(current);
        // A batch that cannot be recorded or confirmed ends this reading; the next one replays from the slot.
        current.then(
          () => inFlight.delete(current),
          (error) => {
            inFlight.delete(current);
            this.#ended ??= error as Error;
            this.#wakeSleepers(true);
          },
        );
        // Keys leave the held set only while nothing is published or recorded (the last confirmation waits
        // for every batch's lanes and records), so a refresh cannot miss a key a lane is failing or a
        // record is storing as failed right now.
        if (this.#held.size > 0 && Date.now() - this.#heldRefreshedAt >= this.config.heldKeysRefreshMs) {
          await confirming;
          await this.#refreshHeld();
        }
      }
      await confirming;
    } finally {
      // Every batch of the reading settles here, the last confirmation among them. A batch whose record
      // failed once the reading ended settles at once, without waiting for the batches before it, whose
      // records may still be retrying: each gives up at its next failure (the reading has ended), so none
      // outlives this reading into the next.
      await Promise.allSettled([...inFlight]);
      // A broken chain leaves later batches' lanes running: let them end (they stop retrying once the
      // reading has ended) before the stream closes under them.
      await Promise.all(lanes.map((lane) => lane.tail));
      this.#session = undefined;
      await session.close();
    }
    if (this.#ended) throw this.#ended;
  }

  #enqueue(commit: WalCommit): void {
    this.#queue.push(commit);
    this.#queuedRows += commit.rows.length;
    this.#metrics.buffered.set(this.#labels, this.#queuedRows);
    if (!this.#paused && this.#queueFull()) {
      this.#paused = true;
      this.#session?.pause();
    }
    this.#wakeSleepers(true);
  }

  /**
   * Rows, and transactions too: PostgreSQL 14 and older stream every transaction of the database, with no
   * row of the outbox or not, and those would queue without bound (while the broker is away) if only rows
   * counted. Below half of the limit on both, reading resumes.
   */
  #queueFull(fraction = 1): boolean {
    const limit = this.config.maxBufferedRows * fraction;
    return this.#queuedRows >= limit || this.#queue.length >= limit;
  }

  /** Whole transactions (or parts) up to walBatchSize rows (at least one); undefined when none is waiting. */
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
    if (this.#paused && !this.#queueFull(0.5)) {
      this.#paused = false;
      this.#session?.resume();
    }
    return { commits, rows, endLsn: commits.findLast((c) => c.endLsn !== undefined)?.endLsn };
  }

  /**
   * Hands each lane its keys' rows of the batch (a lane starts on them once its part of the previous batch
   * is settled) and gathers what the lanes made of them.
   */
  async #send(batch: Batch, lanes: Lane[]): Promise<LaneOutcome> {
    const parts: WalRow[][] = lanes.map(() => []);
    for (const row of batch.rows) (parts[lanes.length === 1 ? 0 : partitionFor(keyOf(row), lanes.length)] as WalRow[]).push(row);
    const outcomes = await Promise.all(
      parts.map((rows, i) => {
        if (rows.length === 0) return NOTHING;
        const lane = lanes[i] as Lane;
        const part = lane.tail.then(() => this.#sendPart(lane, rows));
        lane.tail = part.then(
          () => {},
          () => {},
        );
        return part;
      }),
    );
    if (outcomes.length === 1) return outcomes[0] as LaneOutcome;
    return {
      sent: outcomes.flatMap((o) => o.sent),
      failed: outcomes.flatMap((o) => o.failed),
      abandoned: outcomes.some((o) => o.abandoned),
    };
  }

  /**
   * Publishes one lane's rows of a batch, those of keys not held. An outage (no broker, or this client
   * refused) and other retryable failures are retried in place, the latter `inPlaceAttempts` times; a row
   * that still fails, or fails for good, goes to the polling path, and every later row of its key with it.
   */
  async #sendPart(lane: Lane, rows: WalRow[]): Promise<LaneOutcome> {
    if (lane.abandoned) return { sent: [], failed: [], abandoned: true };
    const sent: SentRow[] = [];
    const failed: WalFailure[] = [];
    let pending: WalRow[] = [];
    for (const row of rows) {
      if (this.#held.has(keyOf(row))) failed.push(heldBack(row));
      else pending.push(row);
    }
    let attempt = 0;
    while (pending.length > 0) {
      attempt++;
      const outcomes = await this.#publishGroup(pending, attempt);
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
        else if (outcome?.ok)
          sent.push({
            ref: row.ref,
            partition: outcome.partition,
            offset: outcome.offset,
            insertOnly: row.insertOnly,
            commitEnd: row.commitEnd,
          });
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
        // Stopping, or this reading ended (a record failed): give up what is unsent, and with it every
        // later part of this lane, whose rows must not go out ahead of these.
        if (!this.#running || this.#ended !== null) break;
        await this.#sleep(Math.min(200 * 2 ** Math.min(attempt, 5), 5_000));
        if (!this.#running || this.#ended !== null) break;
      }
    }
    if (pending.length > 0) {
      lane.abandoned = true;
      return { sent: [], failed: [], abandoned: true };
    }
    return { sent, failed, abandoned: false };
  }

  #retryInPlace(outcome: PublishOutcome | undefined, attempt: number): boolean {
    if (!outcome || outcome.ok) return attempt < this.config.inPlaceAttempts;
    if (!outcome.attempted) return true;
    const error = outcome.error;
    if (error.code === 'ZL_TRANSPORT_UNAVAILABLE' || isClientRefused(error)) return true;
    return error.retryable && error.code !== 'ZL_TOPIC_UNAVAILABLE' && attempt < this.config.inPlaceAttempts;
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
      outcomes = trustedOutcomes(rows.length, await this.#publisher.publish(spans ? spans.records : rows.map((r) => r.record)));
    } catch (error) {
      // A publisher must not throw; if one does, every record failed this attempt.
      const failure = new ZerolossError('ZL_SEND_FAILED', errorSummary(error), { retryable: true });
      outcomes = rows.map(() => ({ ok: false, error: failure, attempted: true }));
    }
    spans?.end(outcomes);
    return outcomes;
  }

  /** Retries until recorded (the database may be restarting): a batch is confirmed only once recorded. */
  async #record(batch: Batch, sent: SentRow[], failed: WalFailure[]): Promise<void> {
    let delay = 100;
    for (;;) {
      try {
        const { sent: changed } = await this.#ledger.record(sent, failed, { endLsn: batch.endLsn });
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
        // Woken when the reading ends, which waits for this record before the next reading starts.
        await this.#sleep(delay, true);
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
