import { CommitHorizon } from '../operations/commit-horizon.ts';
import { SequenceCursor } from '../operations/sequence-cursor.ts';
import { status } from '../operations/status.ts';
import type { BrokerInspector } from '../ports/broker-inspector.ts';
import type { CollectorStore, StatusStore } from '../ports/operations-store.ts';

/** One sample of the dashboard's plots: rates over the interval since the previous sample. */
export interface SeriesPoint {
  /** Epoch ms, the database's clock. */
  t: number;
  sentPerSecond: number;
  /** Send failures (to failed or parked) per second. */
  failedPerSecond: number;
  appliedPerSecond: number;
  /** End-to-end latency (outbox commit to effect commit) of the effects in the interval; null when none. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Records after the committed offsets, all groups. */
  lag: number;
  /** Pending and failed outbox rows. */
  unsent: number;
}

export interface SeriesOptions {
  everyMs: number;
  historyMs: number;
  groups?: string[];
  /**
   * Inbox rows carry their transaction's start time: effects are counted once every transaction that wrote by
   * this long after it has ended (as the metrics collector counts them, src/operations/ops-collector.ts).
   */
  commitDelayMs: number;
}

/**
 * The plots' history: a ring buffer in this process, filled from the same queries as `zeroloss serve`'s
 * metrics (no second store). It starts empty when the dashboard starts and keeps `historyMs`.
 */
export class SeriesRecorder {
  readonly #deps: { store: CollectorStore & StatusStore; broker?: BrokerInspector };
  readonly #options: SeriesOptions;
  readonly #points: SeriesPoint[] = [];
  readonly #quiet = { transition: new CommitHorizon(), inbox: new CommitHorizon() };
  #cursor: { transition: SequenceCursor; applied: Date; at: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  lastError: string | undefined;

  constructor(deps: { store: CollectorStore & StatusStore; broker?: BrokerInspector }, options: SeriesOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  get capacity(): number {
    return Math.max(2, Math.ceil(this.#options.historyMs / this.#options.everyMs));
  }

  points(): SeriesPoint[] {
    return [...this.#points];
  }

  start(): void {
    const tick = () => {
      // One round at a time: a slow database skips ticks instead of piling rounds up.
      this.#running ??= this.sample()
        .then(
          () => {
            this.lastError = undefined;
          },
          (e: Error) => {
            this.lastError = e.message;
          },
        )
        .finally(() => {
          this.#running = undefined;
        });
    };
    tick();
    this.#timer = setInterval(tick, this.#options.everyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One sample; the first one only places the cursors. */
  async sample(): Promise<void> {
    const store = this.#deps.store;
    const writers = await store.tableWriters();
    const now = writers.now;
    const quiet = {
      transition: this.#quiet.transition.observe(now, writers.transition),
      inbox: this.#quiet.inbox.observe(now, writers.inbox),
    };
    if (!this.#cursor) {
      const transition = new SequenceCursor((await store.cursors()).transition);
      this.#cursor = { transition, applied: new Date(now.getTime() - this.#options.commitDelayMs), at: now.getTime() };
      return;
    }
    const cursor = this.#cursor;
    let sent = 0;
    let failed = 0;
    await cursor.transition.round(
      (after, gapIds) => store.transitionsSince(after, 5_000, gapIds),
      (page) => {
        for (const t of page) {
          if (t.to === 1 && t.from !== 1) sent++;
          else if (t.to === 2 || t.to === 3) failed++;
        }
      },
      now,
      quiet.transition,
      5_000,
    );
    const appliedUntil = quiet.inbox ? new Date(quiet.inbox.getTime() - this.#options.commitDelayMs) : cursor.applied;
    const applied = appliedUntil > cursor.applied ? await store.appliedBetween(cursor.applied, appliedUntil) : [];
    const appliedSeconds = Math.max(0.001, (appliedUntil.getTime() - cursor.applied.getTime()) / 1000);
    if (appliedUntil > cursor.applied) cursor.applied = appliedUntil;
    const latencies = applied
      .map((a) => a.endToEndSeconds)
      .filter((s): s is number => s !== null)
      .map((s) => Math.max(0, s * 1000))
      .sort((a, b) => a - b);
    const s = await status(this.#deps, { groups: this.#options.groups, parkedLimit: 1 });
    const seconds = Math.max(0.001, (now.getTime() - cursor.at) / 1000);
    cursor.at = now.getTime();
    this.#push({
      t: now.getTime(),
      sentPerSecond: round(sent / seconds),
      failedPerSecond: round(failed / seconds),
      appliedPerSecond: round(applied.length / appliedSeconds),
      p50Ms: quantile(latencies, 0.5),
      p99Ms: quantile(latencies, 0.99),
      lag: s.groups.reduce((n, g) => n + Number(g.lag), 0),
      unsent: s.outbox.pending + s.outbox.failed,
    });
  }

  #push(point: SeriesPoint): void {
    this.#points.push(point);
    if (this.#points.length > this.capacity) this.#points.splice(0, this.#points.length - this.capacity);
  }
}

/** Nearest-rank quantile of sorted values. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
