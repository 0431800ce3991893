import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { CollectorStore, StatusStore } from '../ports/operations-store.ts';
import type { OpsMetrics } from './ops-metrics.ts';
import { type ReplicationSlotView, type StatusSource, status } from './status.ts';

export interface OpsCollectorOptions {
  /** Groups to report lag for; default the groups the schema knows. */
  groups?: string[];
  stuckAfterMs?: number;
  /**
   * Effects are counted once their transaction has surely committed: inbox rows carry the transaction's start
   * time, so rows younger than this are left for the next round.
   */
  commitDelayMs?: number;
}

const STATE = ['pending', 'sent', 'failed', 'parked'] as const;

/**
 * Derives the schema-wide producer and consumer metrics (O1) from the database and the broker: every
 * relay's state changes (send success and failure, compensation, resends, repairs, commit-to-ack latency),
 * every group's applied effects and end-to-end latency, unsent rows, lag per partition, open dead letters
 * and sequence alarms. One collector behind `zeroloss serve` covers all processes; counting starts at the
 * collector's start (history is not replayed).
 */
export class OpsCollector {
  readonly #store: CollectorStore & StatusStore;
  readonly #broker: BrokerInspector | undefined;
  readonly #metrics: OpsMetrics;
  readonly #sources: ReadonlyArray<StatusSource>;
  readonly #walSlots: (() => Promise<ReplicationSlotView[]>) | undefined;
  readonly #options: OpsCollectorOptions;
  #cursor: { transition: string; alarm: string; applied: Date } | undefined;

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

  /** One collection round; call it on a timer (serve does) or before a scrape. */
  async collect(): Promise<void> {
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
    const dbNow = await this.#store.dbNow();
    const appliedUntil = new Date(dbNow.getTime() - delay);
    if (!this.#cursor) {
      this.#cursor = { ...(await this.#store.cursors()), applied: appliedUntil };
      for (const to of STATE)
        for (const kind of ['first', 'compensation', 'resend', 'repair', 'release']) m.transitions.inc({ to, kind }, 0);
    }
    const cursor = this.#cursor;
    for (;;) {
      const batch = await this.#store.transitionsSince(cursor.transition, 5_000);
      for (const t of batch) {
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
        if (t.to === 1 && t.from !== 1 && t.sinceCommitSeconds !== null) m.commitToAck.observe({ kind }, Math.max(0, t.sinceCommitSeconds));
      }
      if (batch.length > 0) cursor.transition = batch[batch.length - 1]?.id ?? cursor.transition;
      if (batch.length < 5_000) break;
    }
    if (appliedUntil > cursor.applied) {
      for (const a of await this.#store.appliedBetween(cursor.applied, appliedUntil)) {
        m.applied.inc({ group: a.groupId });
        if (a.endToEndSeconds !== null) m.endToEnd.observe({ group: a.groupId }, Math.max(0, a.endToEndSeconds));
      }
      cursor.applied = appliedUntil;
    }
    for (const a of await this.#store.alarmsSince(cursor.alarm)) {
      m.sequenceAlarms.inc({ group: a.groupId, kind: a.kind });
      cursor.alarm = a.id;
    }

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
