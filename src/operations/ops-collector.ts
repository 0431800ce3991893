import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { CollectorStore, StatusStore } from '../ports/operations-store.ts';
import { CommitHorizon } from './commit-horizon.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import { SequenceCursor } from './sequence-cursor.ts';
import { type ReplicationSlotView, type StatusSource, status } from './status.ts';

export interface OpsCollectorOptions {
  /** Groups to report lag for; default the groups the schema knows. */
  groups?: string[];
  stuckAfterMs?: number;
  /**
   * An inbox row carries its effect transaction's start time, and the transaction is waited for (however
   * long it runs) only once it has written: this bounds the time from an effect transaction's start to its
   * first write (the inbox insert, which the consumer runs first). Effects are counted once every transaction
   * that wrote by this long after their start time has ended. Default 5 s.
   */
  commitDelayMs?: number;
}

const STATE = ['pending', 'sent', 'failed', 'parked'] as const;
const PAGE = 5_000;

/**
 * Derives the schema-wide producer and consumer metrics (O1) from the database and the broker: every
 * relay's state changes (send success and failure, compensation, resends, repairs, commit-to-ack latency),
 * every group's applied effects and end-to-end latency, unsent rows, lag per partition, open dead letters
 * and sequence alarms. One collector behind `zeroloss serve` covers all processes; counting starts at the
 * collector's start (history is not replayed: transitions and alarms with ids up to the highest one then,
 * effects whose transaction started `commitDelayMs` before it).
 *
 * Each change is counted once, whatever order the transactions commit in: transitions and alarms through a
 * SequenceCursor (rows below the highest id read that were not committed yet are looked for again), effects
 * by a window of start times that ends where no transaction that may still write into it runs (CommitHorizon).
 */
export class OpsCollector {
  readonly #store: CollectorStore & StatusStore;
  readonly #broker: BrokerInspector | undefined;
  readonly #metrics: OpsMetrics;
  readonly #sources: ReadonlyArray<StatusSource>;
  readonly #walSlots: (() => Promise<ReplicationSlotView[]>) | undefined;
  readonly #options: OpsCollectorOptions;
  readonly #quiet = { transition: new CommitHorizon(), alarm: new CommitHorizon(), inbox: new CommitHorizon() };
  #cursor: { transition: SequenceCursor; alarm: SequenceCursor; applied: Date } | undefined;
  /** The round under way, if any (collect). */
  #running: Promise<void> | undefined;

  constructor(
    deps: {
      store: CollectorStore & StatusStore;
      broker?: BrokerInspector;
      metrics: OpsMetrics;
      /** State-column sources whose rows the producer gauges report beside the outbox's (label source). */
      sources?: ReadonlyArray<StatusSource>;
      /** The WAL relay's replication slots, for the slot gauges (retained WAL, lag, read or not, lost). */
      walSlots?: () => Promise<ReplicationSlotView[]>;
    },
    options: OpsCollectorOptions = {},
  ) {
    this.#store = deps.store;
    this.#broker = deps.broker;
    this.#metrics = deps.metrics;
    this.#sources = deps.sources ?? [];
    this.#walSlots = deps.walSlots;
    this.#options = options;
  }

  /**
   * One collection round; call it on a timer (serve does) or before a scrape. A call while a round runs gets
   * that round: two rounds side by side read from the same cursors and counted the same rows twice (serve's
   * timer fires again when a round outlasts its interval).
   */
  collect(): Promise<void> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<void> {
    try {
      await this.#collect();
    } catch (error) {
      this.#metrics.collectorErrors.inc();
      throw error;
    }
  }

  async #collect(): Promise<void> {
    const m = this.#metrics;
    const delay = this.#options.commitDelayMs ?? 5_000;
    // Observed before any row is read: the writers it lists that have ended since, the reads below see.
    const writers = await this.#store.tableWriters();
    const now = writers.now;
    const quiet = {
      transition: this.#quiet.transition.observe(now, writers.transition),
      alarm: this.#quiet.alarm.observe(now, writers.alarm),
      inbox: this.#quiet.inbox.observe(now, writers.inbox),
    };
    if (!this.#cursor) {
      const start = await this.#store.cursors();
      this.#cursor = {
        transition: new SequenceCursor(start.transition),
        alarm: new SequenceCursor(start.alarm),
        applied: new Date(now.getTime() - delay),
      };
      for (const to of STATE)
        for (const kind of ['first', 'compensation', 'resend', 'repair', 'release']) m.transitions.inc({ to, kind }, 0);
    }
    const cursor = this.#cursor;
    await cursor.transition.round(
      (after, gapIds) => this.#store.transitionsSince(after, PAGE, gapIds),
      (page) => {
        for (const t of page) {
          const to = STATE[t.to] ?? String(t.to);
          const kind =
            t.from === 1 && t.to === 1
              ? 'resend'
              : t.actor.startsWith('reconcile')
                ? 'repair'
                : t.from === 3 && t.to === 0
                  ? 'release'
                  : t.attempt > 1
                    ? 'compensation'
                    : 'first';
          m.transitions.inc({ to, kind });
          if (t.to === 1 && t.from !== 1 && t.sinceCommitSeconds !== null)
            m.commitToAck.observe({ kind }, Math.max(0, t.sinceCommitSeconds));
        }
      },
      now,
      quiet.transition,
      PAGE,
    );
    const appliedUntil = quiet.inbox && new Date(quiet.inbox.getTime() - delay);
    if (appliedUntil && appliedUntil > cursor.applied) {
      for (const a of await this.#store.appliedBetween(cursor.applied, appliedUntil)) {
        m.applied.inc({ group: a.groupId });
        if (a.endToEndSeconds !== null) m.endToEnd.observe({ group: a.groupId }, Math.max(0, a.endToEndSeconds));
      }
      cursor.applied = appliedUntil;
    }
    await cursor.alarm.round(
      (after, gapIds) => this.#store.alarmsSince(after, PAGE, gapIds),
      (page) => {
        for (const a of page) m.sequenceAlarms.inc({ group: a.groupId, kind: a.kind });
      },
      now,
      quiet.alarm,
      PAGE,
    );

    const s = await status(
      { store: this.#store, broker: this.#broker, sources: this.#sources, walSlots: this.#walSlots },
      { groups: this.#options.groups, stuckAfterMs: this.#options.stuckAfterMs, parkedLimit: 1, heldRunsLimit: 10_000 },
    );
    m.outboxRows.set({ state: 'pending' }, s.outbox.pending);
    m.outboxRows.set({ state: 'failed' }, s.outbox.failed);
    m.outboxRows.set({ state: 'parked' }, s.outbox.parked);
    m.outboxRows.set({ state: 'stuck' }, s.outbox.stuck);
    m.outboxOldest.set(s.outbox.oldestUnsentAgeMs / 1000);
    for (const src of s.sources) {
      const source = src.name;
      m.outboxRows.set({ state: 'pending', source }, src.pending);
      m.outboxRows.set({ state: 'failed', source }, src.failed);
      m.outboxRows.set({ state: 'parked', source }, src.parked);
      m.outboxRows.set({ state: 'stuck', source }, src.stuckRows);
      m.outboxOldest.set({ source }, src.oldestUnsentAgeMs / 1000);
    }
    // Held runs wait for a person however many processes reconcile or approve (O8).
    m.reconcileHeld.set(s.heldRuns.length);
    // A dropped slot's series go with it.
    for (const g of [m.walSlotRetained, m.walSlotLag, m.walSlotActive, m.walSlotLost]) g.reset();
    for (const x of s.walSlots) {
      m.walSlotRetained.set({ slot: x.slot }, x.retainedBytes);
      m.walSlotLag.set({ slot: x.slot }, x.lagBytes);
      m.walSlotActive.set({ slot: x.slot }, x.active ? 1 : 0);
      m.walSlotLost.set({ slot: x.slot }, x.walStatus === 'lost' ? 1 : 0);
    }
    m.groupLag.reset();
    for (const g of s.groups) {
      m.groupLagTotal.set({ group: g.group }, Number(g.lag));
      m.deadLettersOpen.set({ group: g.group }, g.openDeadLetters);
      for (const p of g.partitions) {
        if (p.lag !== null) m.groupLag.set({ group: g.group, topic: p.topic, partition: String(p.partition) }, Number(p.lag));
      }
    }
  }
}
