import { HookEmitter } from '../core/hook-emitter.ts';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { backoffDelay } from '../core/backoff.ts';
import { parseConfig } from '../core/config.ts';
import { errorSummary, isClientRefused, ZerolossError } from '../core/errors.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { ClaimedRow, FailedOutcome, RelaySource, SentOutcome } from '../ports/outbox-store.ts';
import type { Logger } from '../ports/logger.ts';
import { silentLogger } from '../ports/logger.ts';
import type { Database } from '../ports/sql-executor.ts';
import { noTracing, type Tracing } from '../ports/tracing.ts';
import type { Publisher } from '../ports/transport.ts';
import { HEADER } from '../core/envelope.ts';
import { BrokerSentCheck } from './broker-sent-check.ts';
import { createRelayMetrics, type RelayMetrics } from './relay-metrics.ts';
import { startSendSpans } from './send-spans.ts';
import { trustedOutcomes } from './trusted-outcomes.ts';

export const relayConfigSchema = z
  .object({
    /** Lease owner name; unique per process. */
    instanceId: z.string().min(1).optional(),
    batchSize: z.number().int().positive().default(500),
    /** Claim rounds in flight at once; safe for key order because leased rows hold their key back. */
    concurrency: z.number().int().positive().max(32).default(2),
    /** A claim is another instance's to take after this long; must exceed the publisher's delivery timeout. */
    leaseMs: z.number().int().positive().default(60_000),
    /** Attempts before a row is parked (terminal until a person acts). */
    maxAttempts: z.number().int().positive().default(10),
    backoff: z
      .object({
        baseMs: z.number().int().positive().default(1_000),
        maxMs: z.number().int().positive().default(300_000),
        jitter: z.number().min(0).max(1).default(0.5),
      })
      .strict()
      .default({ baseMs: 1_000, maxMs: 300_000, jitter: 0.5 }),
    /**
     * How often an idle relay checks for claimable rows, on sources with a cheap check (the outbox table:
     * one index probe). This is how new commits are found unless producers notify; bounds the added latency.
     * One loop per source polls; the others sleep until a full batch shows there is more to do.
     */
    pollIntervalMs: z.number().int().positive().default(20),
    /** Compensation scan interval with nothing to do, on sources without the cheap check. */
    idleIntervalMs: z.number().int().positive().default(60_000),
    /** Scan interval while unsent rows wait (failed rows backing off, zombies). */
    backlogIntervalMs: z.number().int().positive().default(10_000),
    /** Floor between scans when rows are due right away but none could be claimed (held by other instances). */
    minIntervalMs: z.number().int().nonnegative().default(50),
    /**
     * Longest wait between tries of rows whose topic the broker lacks or refuses (they back off like
     * failed rows but are never charged or parked): bounds how long they wait once the topic is created
     * or its ACL fixed.
     */
    unavailableTopicMaxDelayMs: z.number().int().positive().default(30_000),
    /**
     * With a broker inspector: how far before an earlier claim the broker check starts reading, for the
     * skew between the database's clock (leases) and the producer's record timestamps.
     */
    brokerCheckSlackMs: z.number().int().nonnegative().default(10_000),
  })
  .strict();

export type RelayConfig = z.input<typeof relayConfigSchema>;

/** One claim loop: a wake sets `woken` (seen after the round in flight) and ends its sleep. */
interface LoopState {
  source: RelaySource;
  woken: boolean;
  interrupt: (() => void) | undefined;
  /** performance.now() when the turn in progress began; undefined while the loop sleeps. */
  turnStartedAt: number | undefined;
  /**
   * performance.now() of this loop's last claim that came back empty while another loop of its source was
   * mid-turn: the due rows were then most likely held back by that loop's rows of the same keys (a backlog
   * of few keys), and claiming again before that round ends would find them held back again.
   */
  heldBackAt: number | undefined;
  /**
   * Set while this loop's claims come back empty although the source's check says rows are due: another
   * claimer (most likely another instance) holds earlier rows of their keys. `claims` in a row, the
   * source's `newest` when the last one was made, and when.
   */
  contended: { claims: number; newest: string | undefined; at: number } | undefined;
}

/** What a readiness probe needs to know about the claim loops (see `Relay.health`). */
export interface RelayHealth {
  running: boolean;
  loops: number;
  /** How long the longest-running turn in progress (a due check or claim, send and record) has taken so far. */
  longestTurnMs: number;
  /** Sources whose last round found the broker unreachable, or refusing this client, for every record. */
  brokerUnreachable: string[];
}

export interface RelayEvents {
  parked: [{ source: string; messageIds: string[] }];
  error: [Error];
  round: [{ source: string; claimed: number; sent: number; failed: number; claimMs: number }];
}

/**
 * Sends committed rows to the broker and records the answer. One loop serves both the fast path (new
 * commits, found by a cheap poll or a commit notification) and compensation (failed rows whose backoff
 * elapsed and zombies whose lease expired, which the same poll finds): both go through the same leased
 * claim, so two instances never send one row at once and a dead instance's rows come back after its lease.
 */
export class Relay extends HookEmitter<RelayEvents> {
  readonly config: Readonly<z.output<typeof relayConfigSchema>>;
  readonly instanceId: string;
  readonly #sources: RelaySource[];
  readonly #publisher: Publisher;
  readonly #db: Database | undefined;
  readonly #metrics: RelayMetrics;
  readonly #tracing: Tracing;
  readonly #log: Logger;
  readonly #brokerCheck: BrokerSentCheck | undefined;
  #running = false;
  #loops: Promise<void>[] = [];
  #unlisten: Array<() => Promise<void>> = [];
  /** One entry per running loop: a wake sets `woken` (seen after the round in flight) and ends its sleep. */
  #loopStates = new Set<LoopState>();
  /** When each source's backlog gauges were last refreshed; a busy relay refreshes them at most once a second. */
  #backlogRefreshedAt = new Map<string, number>();
  /** Consecutive rounds per source in which the broker could not be reached at all. */
  #outages = new Map<string, number>();
  /**
   * Per source and topic: consecutive rounds that found the topic missing or refused, and when the last
   * did. Gone once the topic takes a record here, or once nothing was deferred for it for twice the
   * longest wait (another relay may have sent its rows), so the gauge does not outlive the problem.
   */
  #unavailableTopics = new Map<string, { source: string; topic: string; rounds: number; at: number }>();

  constructor(options: {
    sources: RelaySource | RelaySource[];
    publisher: Publisher;
    /** For commit wake-ups (LISTEN); without it the relay polls. */
    db?: Database;
    registry?: Registry;
    config?: RelayConfig;
    /** A send span per record, parented on the trace context stored with it (`otelTracing()`); default none. */
    tracing?: Tracing;
    /** Operational events (start, stop, failed and parked rows, errors); default silent. */
    logger?: Logger;
    /**
     * The broker's read-only view. With it, a row an earlier claim left without an outcome (that relay died
     * or hung, perhaps after the broker's ack) is looked for on the broker first and, when found, marked
     * sent with the broker's position instead of sent again. Without it (RabbitMQ) such rows are resent.
     */
    inspector?: BrokerInspector;
  }) {
    super();
    this.config = parseConfig(relayConfigSchema, options.config ?? {}, 'relay');
    this.instanceId = this.config.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.#sources = Array.isArray(options.sources) ? options.sources : [options.sources];
    this.#publisher = options.publisher;
    this.#db = options.db;
    this.#metrics = createRelayMetrics(options.registry);
    this.#tracing = options.tracing ?? noTracing;
    this.#log = (options.logger ?? silentLogger).child({ component: 'relay', instance: this.instanceId });
    this.#brokerCheck = options.inspector
      ? new BrokerSentCheck(options.inspector, {
          leaseMs: this.config.leaseMs,
          slackMs: this.config.brokerCheckSlackMs,
          registry: this.#metrics.registry,
        })
      : undefined;
    // Publish every series at zero from the start, so rate() and absence alerts work before the first event.
    for (const source of this.#sources) {
      const labels = { source: source.name };
      for (const counter of [
        this.#metrics.sent,
        this.#metrics.failed,
        this.#metrics.resent,
        this.#metrics.parked,
        this.#metrics.rounds,
        this.#metrics.recordFailures,
      ]) {
        counter.inc(labels, 0);
      }
      this.#metrics.sendSeconds.zero(labels);
      this.#metrics.claimSeconds.zero(labels);
    }
    // An 'error' event without a listener would throw; the relay reports errors, it never dies of them.
    this.on('error', (error) => this.#log.error({ err: error, code: (error as { code?: unknown }).code }, error.message));
  }

  get registry(): Registry {
    return this.#metrics.registry;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    if (this.#db) {
      for (const channel of new Set(this.#sources.map((s) => s.wakeChannel).filter((c) => c !== undefined))) {
        this.#unlisten.push(await this.#db.listen(channel, () => this.wake()));
      }
    }
    for (const source of this.#sources) {
      for (let i = 0; i < this.config.concurrency; i++) this.#loops.push(this.#loop(source, i === 0));
    }
    this.#log.info({ sources: this.#sources.map((s) => s.name), concurrency: this.config.concurrency }, 'relay started');
  }

  /** Finishes the rounds in flight (their results are recorded), then stops. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.wake();
    await Promise.all(this.#loops);
    this.#loops = [];
    await Promise.all(this.#unlisten.map((u) => u().catch(() => {})));
    this.#unlisten = [];
    this.#log.info({}, 'relay stopped');
  }

  /** Makes every idle loop scan now (commit notification, or a caller that just enqueued). */
  wake(): void {
    for (const state of this.#loopStates) {
      state.woken = true;
      state.interrupt?.();
    }
  }

  /** Runs claim rounds until nothing is due; for tests, tools and one-shot `relay --once`. */
  async drain(): Promise<number> {
    let total = 0;
    for (const source of this.#sources) {
      for (;;) {
        const { claimed } = await this.#round(source);
        total += claimed;
        if (claimed === 0) break;
      }
    }
    return total;
  }

  /** Read-only state for readiness probes; a loop stuck in one turn shows as a growing `longestTurnMs`. */
  health(): RelayHealth {
    const now = performance.now();
    let longestTurnMs = 0;
    for (const state of this.#loopStates) {
      if (state.turnStartedAt !== undefined) longestTurnMs = Math.max(longestTurnMs, now - state.turnStartedAt);
    }
    const brokerUnreachable = [...this.#outages].filter(([, rounds]) => rounds > 0).map(([source]) => source);
    return { running: this.#running, loops: this.#loopStates.size, longestTurnMs, brokerUnreachable };
  }

  /** Current metric values, for `relay.metrics()` callers that do not scrape Prometheus. */
  async metrics(): Promise<Record<string, number>> {
    for (const source of this.#sources) await this.#refreshBacklog(source).catch(() => {});
    const out: Record<string, number> = {};
    for (const metric of await this.#metrics.registry.getMetricsAsJSON()) {
      if (!metric.name.startsWith('zeroloss_relay') && !metric.name.startsWith('zeroloss_outbox')) continue;
      for (const v of metric.values as Array<{ value: number; metricName?: string; labels: Record<string, unknown> }>) {
        const name = v.metricName ?? metric.name;
        if (name.endsWith('_bucket')) continue;
        out[name] = (out[name] ?? 0) + v.value;
      }
    }
    return out;
  }

  async #loop(source: RelaySource, poller: boolean): Promise<void> {
    // Per loop, so one loop starting a round cannot swallow a wake meant for another mid-round.
    const state: LoopState = {
      source,
      woken: false,
      interrupt: undefined,
      turnStartedAt: undefined,
      heldBackAt: undefined,
      contended: undefined,
    };
    this.#loopStates.add(state);
    let errorDelay = 0;
    // After a round that found less than a batch, a polled source is asked its cheap check before a claim.
    const polled = source.anyDue !== undefined;
    let idle = false;
    try {
      while (this.#running) {
        const woken = state.woken;
        state.woken = false;
        state.turnStartedAt = performance.now();
        let waitMs: number;
        try {
          const heldBack = idle && !woken && this.#heldBack(state);
          const check = idle && !woken && polled && !heldBack ? await source.anyDue?.() : undefined;
          if (heldBack) {
            waitMs = polled ? this.#pollWait(poller) : this.config.minIntervalMs;
          } else if (check && !check.due) {
            state.contended = undefined;
            await this.#refreshBacklogOlderThan(source, this.config.backlogIntervalMs);
            waitMs = this.#pollWait(poller);
          } else if (check && this.#contended(state, check.newest)) {
            waitMs = this.#pollWait(poller);
          } else {
            const { claimed } = await this.#round(source);
            errorDelay = 0;
            state.heldBackAt = claimed === 0 && this.#siblingMidTurn(state) ? performance.now() : undefined;
            state.contended =
              claimed === 0 && polled
                ? { claims: (state.contended?.claims ?? 0) + 1, newest: check?.newest, at: performance.now() }
                : undefined;
            const full = claimed >= this.config.batchSize;
            // A full batch: more is waiting, so the other loops should claim too instead of sleeping.
            if (full) this.#wakeOthers(state);
            idle = !full && !state.woken;
            // Gauges at most once a second while rows flow; the idle sleep of unpolled sources is sized by the backlog.
            if (!idle || polled) await this.#refreshBacklogOlderThan(source, 1_000);
            // Draining a backlog, or a commit arrived during the round: go again at once.
            if (!idle) continue;
            waitMs = polled ? this.#pollWait(poller) : await this.#idleWait(source);
          }
        } catch (error) {
          // Database or broker trouble outside a send: report, back off, keep going.
          this.emit('error', error as Error);
          errorDelay = Math.min(Math.max(errorDelay * 2, 200), 5_000);
          waitMs = errorDelay;
        }
        state.turnStartedAt = undefined;
        if (!this.#running || state.woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, waitMs);
          function done() {
            clearTimeout(timer);
            state.interrupt = undefined;
            resolve();
          }
          state.interrupt = done;
        });
      }
    } finally {
      this.#loopStates.delete(state);
    }
  }

  /**
   * Whether the loop's last claim came back empty while another loop of its source was mid-turn, less than
   * HELD_BACK_MS ago, and a loop of its source is still mid-turn: it then neither claims on a poll nor is woken
   * by a full round. After HELD_BACK_MS it claims again, so a backlog of many keys gets its concurrency back.
   */
  #heldBack(state: LoopState): boolean {
    if (state.heldBackAt === undefined) return false;
    if (performance.now() - state.heldBackAt >= HELD_BACK_MS || !this.#siblingMidTurn(state)) {
      state.heldBackAt = undefined;
      return false;
    }
    return true;
  }

  /**
   * Whether the loop sits out a claim although rows are due: its last claims found every due row held back
   * by another claimer's earlier rows of their keys (across instances the siblings' turns cannot be seen,
   * see `#heldBack`), and no row was added since. Each such claim scans up to a batch of rows (and used to lock
   * them, hiding them from the claimer doing the work: four polling relays measured at 0.44x of one). It claims again
   * when a row is added, or after a wait that doubles with each empty claim, up to HELD_BACK_MS, so a key
   * whose holder died (its lease runs out) or a failed row coming due is still taken within a second.
   */
  #contended(state: LoopState, newest: string | undefined): boolean {
    const contended = state.contended;
    if (contended === undefined || newest === undefined) return false;
    // An empty claim made without a check before it (after a full round, or woken) takes the first check's
    // mark: what is there now was most likely there then, and the wait is short at that point either way.
    contended.newest ??= newest;
    if (newest !== contended.newest) return false;
    const waitMs = Math.min(this.config.pollIntervalMs * 2 ** contended.claims, Math.max(HELD_BACK_MS, this.config.pollIntervalMs));
    return performance.now() - contended.at < waitMs;
  }

  #siblingMidTurn(self: LoopState): boolean {
    for (const state of this.#loopStates) {
      if (state !== self && state.source === self.source && state.turnStartedAt !== undefined) return true;
    }
    return false;
  }

  /** The poller checks every pollIntervalMs; the other loops of a polled source wait to be woken (idleIntervalMs as a fallback). */
  #pollWait(poller: boolean): number {
    return poller ? this.config.pollIntervalMs : this.config.idleIntervalMs;
  }

  async #refreshBacklogOlderThan(source: RelaySource, ms: number): Promise<void> {
    if (Date.now() - (this.#backlogRefreshedAt.get(source.name) ?? 0) >= ms) await this.#refreshBacklog(source);
  }

  /**
   * Wakes the sleeping loops of the same source, except those held back by a round of this relay (see
   * `#heldBack`): on a backlog of few keys every row after this round's is blocked by it until it is
   * recorded, so a second loop's claim found nothing and cost a full claim's scan and locks each round,
   * competing with the round that does the work (measured: 72 empty claims for 46 useful ones over 20,000
   * messages of 100 keys, concurrency 2). Rows of keys this round does not hold are claimed by the next round
   * anyway, or by the held-back loop once its hold has lapsed.
   */
  #wakeOthers(self: LoopState): void {
    for (const state of this.#loopStates) {
      if (state === self || state.source !== self.source || !state.interrupt || this.#heldBack(state)) continue;
      state.woken = true;
      state.interrupt();
    }
  }

  /** How long to sleep: until the next failed row is due, bounded by the backlog or idle interval. */
  async #idleWait(source: RelaySource): Promise<number> {
    const stats = await this.#refreshBacklog(source);
    const waiting = stats.pending + stats.failed;
    if (waiting === 0) return this.config.idleIntervalMs;
    const due = stats.nextDueInMs ?? this.config.backlogIntervalMs;
    return Math.max(this.config.minIntervalMs, Math.min(this.config.backlogIntervalMs, due));
  }

  async #refreshBacklog(source: RelaySource) {
    const stats = await source.backlog();
    this.#backlogRefreshedAt.set(source.name, Date.now());
    this.#metrics.pending.set({ source: source.name }, stats.pending + stats.failed);
    this.#metrics.parkedNow.set({ source: source.name }, stats.parked);
    this.#metrics.oldest.set({ source: source.name }, stats.oldestUnsentAgeMs / 1000);
    for (const [slot, entry] of this.#unavailableTopics) {
      if (entry.source !== source.name || Date.now() - entry.at < 2 * this.config.unavailableTopicMaxDelayMs) continue;
      this.#unavailableTopics.delete(slot);
      this.#metrics.topicUnavailable.set({ source: entry.source, topic: entry.topic }, 0);
    }
    return stats;
  }

  /**
   * P3: the broker answered, but its answer could not be written to the database (the source's failed
   * "callback update"). Logged as an error and counted (an alert rule watches the counter), then thrown on
   * to the loop, which backs off; the rows stay leased, and the broker check or reconciliation finds acked
   * ones without a resend (P5).
   */
  async #recording<T>(source: RelaySource, what: 'acks' | 'failures', rows: number, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (rows === 0) throw error;
      this.#metrics.recordFailures.inc({ source: source.name }, rows);
      this.#log.error(
        { source: source.name, rows, err: error },
        `the broker answered ${rows} messages but recording its ${what} failed: they stay leased until checked or resent`,
      );
      throw error;
    }
  }

  async #round(source: RelaySource): Promise<{ claimed: number }> {
    const claimStarted = performance.now();
    const claimedRows = await source.claim(this.instanceId, this.config.batchSize, this.config.leaseMs);
    const claimMs = performance.now() - claimStarted;
    this.#metrics.claimSeconds.observe({ source: source.name }, claimMs / 1000);
    this.#metrics.rounds.inc({ source: source.name });
    if (claimedRows.length === 0) return { claimed: 0 };
    const labels = { source: source.name };
    const sent: SentOutcome[] = [];
    const rows = await this.#withoutHeldByBroker(source, claimedRows, sent);
    const spans = rows.length > 0 && this.#tracing.active() ? startSendSpans(this.#tracing, rows) : undefined;
    const stopTimer = rows.length > 0 ? this.#metrics.sendSeconds.startTimer(labels) : () => 0;
    let outcomes: Awaited<ReturnType<Publisher['publish']>> = [];
    try {
      if (rows.length > 0)
        outcomes = trustedOutcomes(rows.length, await this.#publisher.publish(spans ? spans.records : rows.map((r) => r.record)));
    } catch (error) {
      // A publisher must not throw, but if one does every row failed this attempt.
      const failure = errorSummary(error);
      outcomes = rows.map(() => ({ ok: false, error: new ZerolossError('ZL_SEND_FAILED', failure, { retryable: true }), attempted: true }));
    }
    stopTimer();
    spans?.end(outcomes);
    const failed: FailedOutcome[] = [];
    // Every row failed because the broker was unreachable: an outage, not a fault of these rows. Back
    // off by the outage's length and do not charge the attempt, so an outage never parks rows.
    const outage = outcomes.length > 0 && outcomes.every((o) => !o.ok && o.attempted && o.error.code === 'ZL_TRANSPORT_UNAVAILABLE');
    // The broker refused this client (wrong password, untrusted certificate: ZL_KAFKA_AUTH, ZL_KAFKA_TLS).
    // No row is at fault, so, as in an outage, none is charged or parked, and the relay keeps trying at
    // its backoff rather than stopping: inside a service the secret may be fixed without a restart (a
    // password or token function that starts returning the right one, a credential fixed on the broker).
    // But unlike an outage it needs an operator, so every such round is reported as an 'error' event (the
    // CLI exits non-zero on it) and readiness shows the broker as unreachable; never a silent retry loop.
    const refused = outcomes.find((o) => !o.ok && o.attempted && isClientRefused(o.error));
    const refusedAll = refused !== undefined && outcomes.every((o) => !o.ok && o.attempted && isClientRefused(o.error));
    if (refused && !refused.ok) this.emit('error', refused.error);
    const outageRounds = outage || refusedAll ? (this.#outages.get(source.name) ?? 0) + 1 : 0;
    this.#outages.set(source.name, outageRounds);
    const topicDelays = this.#unavailableTopicDelays(source, rows, outcomes);
    rows.forEach((row, i) => {
      const outcome = outcomes[i];
      const topicDelay = topicDelays.get(row.record.topic);
      if (outcome?.ok) {
        sent.push({ ref: row.ref, partition: outcome.partition, offset: outcome.offset });
        if (row.attempt > 1) this.#metrics.resent.inc(labels);
      } else if (topicDelay !== undefined && outcome?.error.code === 'ZL_TOPIC_UNAVAILABLE') {
        // The topic is missing or refused, which is no fault of the row: it waits with backoff, never
        // charged and never parked, so creating the topic or fixing the ACL lets it flow without a release.
        failed.push({ ref: row.ref, error: errorSummary(outcome.error), action: 'retry', delayMs: topicDelay, charge: false });
      } else if (outage || (outcome && !outcome.ok && isClientRefused(outcome.error))) {
        failed.push({
          ref: row.ref,
          error: errorSummary(outcome?.error),
          action: 'retry',
          delayMs: this.#delay(Math.max(outageRounds, 1)),
          charge: false,
        });
      } else {
        failed.push(this.#failure(row, outcome));
      }
    });
    // Record acks first: they are the facts we must not lose. If this write fails the rows stay leased
    // and are resent after the lease (a duplicate on the topic, never a loss).
    await this.#recording(source, 'acks', sent.length, () => source.markSent(this.instanceId, sent));
    this.#metrics.sent.inc(labels, sent.length);
    const parked = await this.#recording(source, 'failures', failed.length, () => source.markFailed(this.instanceId, failed));
    this.#metrics.failed.inc(labels, failed.filter((f) => f.action !== 'release').length);
    if (failed.length > 0) this.#logFailed(source, rows, outcomes, failed);
    if (parked.length > 0) {
      this.#metrics.parked.inc(labels, parked.length);
      this.#log.warn({ source: source.name, messageIds: parked }, 'rows parked: a person must release or discard them');
      this.emit('parked', { source: source.name, messageIds: parked });
    }
    const claimed = claimedRows.length;
    this.emit('round', { source: source.name, claimed, sent: sent.length, failed: failed.length, claimMs });
    this.#log.debug({ source: source.name, claimed, sent: sent.length, failed: failed.length, claimMs }, 'relay round');
    return { claimed };
  }

  /**
   * The rows to send: those an earlier claim left without an outcome are first looked for on the broker
   * (with an inspector), and the ones it holds go to `sent` with the broker's position instead. A check
   * that fails sends them all (a duplicate at worst, never a loss). A round of rows claimed for the first
   * time never reads the broker; one with such a row waits for the check (milliseconds on the table log,
   * tens of milliseconds on Kafka, longer with a busy partition: docs/reliability.md), inside its lease.
   */
  async #withoutHeldByBroker(source: RelaySource, rows: ClaimedRow[], sent: SentOutcome[]): Promise<ClaimedRow[]> {
    if (!this.#brokerCheck || !rows.some((r) => r.previousLeaseUntilMs !== undefined)) return rows;
    const started = performance.now();
    const check = await this.#brokerCheck.find(source.name, rows);
    const ms = Math.round(performance.now() - started);
    if (check.error !== undefined) {
      this.#log.warn(
        { source: source.name, err: check.error, rows: rows.filter((r) => r.previousLeaseUntilMs !== undefined).length, ms },
        'broker check failed: rows an earlier claim left without an outcome are sent again',
      );
    }
    if (check.found.length === 0) return rows;
    sent.push(...check.found);
    this.#log.info(
      { source: source.name, found: check.found.length, recordsRead: check.recordsRead, ms },
      'rows an earlier claim sent were found on the broker: marked sent without a resend',
    );
    const found = new Set(check.found.map((f) => f.ref));
    return rows.filter((r) => !found.has(r.ref));
  }

  /**
   * A line per failed row (a warning: the relay retries it, or parks it once its attempts are spent), for
   * the first FAILED_ROWS_LOGGED of a round; an outage fails the whole batch, and one line then says how many.
   */
  #logFailed(source: RelaySource, rows: ClaimedRow[], outcomes: Awaited<ReturnType<Publisher['publish']>>, failed: FailedOutcome[]): void {
    const byRef = new Map(rows.map((row, i) => [row.ref, { row, outcome: outcomes[i] }]));
    const charged = failed.filter((f) => f.action !== 'release');
    if (charged.length > FAILED_ROWS_LOGGED) {
      this.#log.warn({ source: source.name, failed: charged.length, error: charged[0]?.error }, `send failed for ${charged.length} rows`);
    }
    for (const f of charged.slice(0, FAILED_ROWS_LOGGED)) {
      const entry = byRef.get(f.ref);
      const outcome = entry?.outcome;
      this.#log.warn(
        {
          source: source.name,
          messageId: entry?.row.record.headers[HEADER.id],
          topic: entry?.row.record.topic,
          key: entry?.row.record.key,
          attempt: entry?.row.attempt,
          action: f.action,
          delayMs: f.delayMs,
          code: outcome && !outcome.ok ? outcome.error.code : undefined,
          error: f.error,
        },
        f.action === 'park' ? 'send failed: parked' : 'send failed: will retry',
      );
    }
  }

  /**
   * Per topic that answered ZL_TOPIC_UNAVAILABLE in this round, how long its rows wait: the backoff of
   * the consecutive rounds that found it so, capped by unavailableTopicMaxDelayMs. Keeps the per-topic
   * gauge and counter, and clears them for topics that took a record.
   */
  #unavailableTopicDelays(
    source: RelaySource,
    rows: ClaimedRow[],
    outcomes: Awaited<ReturnType<Publisher['publish']>>,
  ): Map<string, number> {
    const waiting = new Map<string, number>();
    const accepted = new Set<string>();
    rows.forEach((row, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) accepted.add(row.record.topic);
      else if (outcome?.error.code === 'ZL_TOPIC_UNAVAILABLE') waiting.set(row.record.topic, (waiting.get(row.record.topic) ?? 0) + 1);
    });
    for (const topic of accepted) {
      const slot = `${source.name}\u0000${topic}`;
      if (waiting.has(topic) || !this.#unavailableTopics.has(slot)) continue;
      this.#unavailableTopics.delete(slot);
      this.#metrics.topicUnavailable.set({ source: source.name, topic }, 0);
    }
    const delays = new Map<string, number>();
    for (const [topic, count] of waiting) {
      const slot = `${source.name}\u0000${topic}`;
      const rounds = (this.#unavailableTopics.get(slot)?.rounds ?? 0) + 1;
      this.#unavailableTopics.set(slot, { source: source.name, topic, rounds, at: Date.now() });
      this.#metrics.topicUnavailable.set({ source: source.name, topic }, count);
      this.#metrics.topicUnavailableTotal.inc({ source: source.name, topic }, count);
      delays.set(topic, Math.min(this.#delay(rounds), this.config.unavailableTopicMaxDelayMs));
    }
    return delays;
  }

  #failure(row: ClaimedRow, outcome: Awaited<ReturnType<Publisher['publish']>>[number] | undefined): FailedOutcome {
    if (!outcome || outcome.ok) {
      return {
        ref: row.ref,
        error: 'publisher gave no outcome for this record',
        action: 'retry',
        delayMs: this.#delay(row.attempt),
        charge: true,
      };
    }
    if (!outcome.attempted) return { ref: row.ref, error: '', action: 'release', delayMs: 0, charge: false };
    const error = errorSummary(outcome.error);
    if (!outcome.error.retryable || row.attempt >= this.config.maxAttempts) {
      return { ref: row.ref, error, action: 'park', delayMs: 0, charge: true };
    }
    return { ref: row.ref, error, action: 'retry', delayMs: this.#delay(row.attempt), charge: true };
  }

  #delay(attempt: number): number {
    return backoffDelay(attempt, this.config.backoff);
  }
}

/** How long a loop whose claim found every due row held back by a sibling's round stays out of the way. */
const HELD_BACK_MS = 1_000;

/** Failed rows of one round logged one by one; beyond that, one line with the count. */
const FAILED_ROWS_LOGGED = 10;
