import { HookEmitter } from '../core/hook-emitter.ts';
import { z } from 'zod';
import { parseConfig } from '../core/config.ts';
import { type ReconcileDeps, type ReconcileOptions, type ReconcileReport, reconcile } from './reconcile.ts';

const DAY = 86_400_000;

export const reconcileScheduleSchema = z
  .object({
    /** Every `everyMs`, reconcile [now - settleMs - windowMs, now - settleMs). false turns it off. */
    recent: z
      .union([
        z.literal(false),
        z
          .object({
            everyMs: z.number().int().positive().default(300_000),
            windowMs: z.number().int().positive().default(900_000),
            /** Messages younger than this are still on their way and left to the next run. */
            settleMs: z.number().int().nonnegative().default(120_000),
          })
          .strict(),
      ])
      .default({ everyMs: 300_000, windowMs: 900_000, settleMs: 120_000 }),
    /** Once a day at `atUtcHour`, reconcile the previous UTC day. false turns it off. */
    nightly: z
      .union([z.literal(false), z.object({ atUtcHour: z.number().int().min(0).max(23).default(2) }).strict()])
      .default({ atUtcHour: 2 }),
    /** Re-publish missing messages automatically, up to `maxAutoRepair` per run (O2). */
    repair: z.boolean().default(false),
    /**
     * The escalation threshold (O8; 1,000 in the source). A run that finds more missing messages escalates:
     * nothing is re-published, the run is stored held for a person, 'escalated' is emitted, the escalation
     * metric rises, and `onEscalate` runs.
     */
    maxAutoRepair: z.number().int().nonnegative().default(1_000),
    /**
     * The emergency plan: called with the held report. Its failure (a throw, a rejection, or running past
     * `escalateTimeoutMs`) is emitted as 'hookFailed' and counted; it never stops the scheduler.
     */
    onEscalate: z.custom<(report: ReconcileReport) => unknown>((v) => typeof v === 'function', 'must be a function').optional(),
    escalateTimeoutMs: z.number().int().positive().default(30_000),
    topics: z.array(z.string().min(1)).optional(),
    groups: z.array(z.string().min(1)).optional(),
  })
  .strict();

export type ReconcileSchedule = z.input<typeof reconcileScheduleSchema>;

export interface ReconcileSchedulerEvents {
  report: [ReconcileReport];
  /** A run found missing messages (whether or not it re-published them). */
  gap: [ReconcileReport];
  /** A run found more than `maxAutoRepair` missing and was held for a person (O8). */
  escalated: [ReconcileReport];
  /** `onEscalate` failed or ran out of time. */
  hookFailed: [Error, ReconcileReport];
  error: [Error];
}

/**
 * Scheduled reconciliation (O2): the recent window every few minutes and the previous day every night.
 * Emits 'gap' (and counts it in the metrics) whenever a run finds a message missing at any stage; with
 * `repair`, gaps up to `maxAutoRepair` are re-published from the outbox at once. Larger ones escalate (O8):
 * held for a person, 'escalated', and the `onEscalate` hook.
 */
export class ReconcileScheduler extends HookEmitter<ReconcileSchedulerEvents> {
  readonly config: Readonly<z.output<typeof reconcileScheduleSchema>>;
  readonly #deps: ReconcileDeps;
  readonly #timers = new Set<NodeJS.Timeout>();
  #running: Promise<unknown> = Promise.resolve();
  #stopped = true;

  constructor(deps: ReconcileDeps, config: ReconcileSchedule = {}) {
    super();
    this.config = parseConfig(reconcileScheduleSchema, config, 'reconcile schedule');
    this.#deps = deps;
    this.on('error', () => {});
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const recent = this.config.recent;
    if (recent) this.#every(recent.everyMs, () => this.runRecent());
    if (this.config.nightly) this.#nightly();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await this.#running.catch(() => {});
  }

  /** Reconciles the recent window now. */
  runRecent(now = Date.now()): Promise<ReconcileReport> {
    const r = this.config.recent || { windowMs: 900_000, settleMs: 120_000 };
    const to = now - r.settleMs;
    return this.#run('recent', { from: new Date(to - r.windowMs), to: new Date(to) });
  }

  /** Reconciles the UTC day before `now`. */
  runNightly(now = Date.now()): Promise<ReconcileReport> {
    const today = Math.floor(now / DAY) * DAY;
    return this.#run('nightly', { from: new Date(today - DAY), to: new Date(today) });
  }

  #run(kind: string, window: { from: Date; to: Date }): Promise<ReconcileReport> {
    const options: ReconcileOptions = {
      kind,
      repair: this.config.repair && this.#deps.publisher !== undefined,
      maxAutoRepair: this.config.maxAutoRepair,
      topics: this.config.topics,
      groups: this.config.groups,
      actor: `reconcile:${kind}`,
    };
    // One run at a time: a slow nightly run delays the next recent one rather than racing it.
    // The hook is part of the run: stop() waits for it, and a slow one delays the next run (bounded).
    const next = this.#running
      .catch(() => {})
      .then(() => reconcile(this.#deps, window, options))
      .then(async (report) => {
        this.emit('report', report);
        if (report.counts.missingOnBroker > 0 || report.groups.some((g) => g.missing > 0)) this.emit('gap', report);
        if (report.held) {
          this.emit('escalated', report);
          await this.#escalate(report);
        }
        return report;
      });
    this.#running = next;
    return next;
  }

  /** Runs the emergency plan, bounded in time; its failure is reported and counted, never thrown. */
  async #escalate(report: ReconcileReport): Promise<void> {
    const hook = this.config.onEscalate;
    if (!hook) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => hook(report)),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`escalation hook still running after ${this.config.escalateTimeoutMs} ms`)),
            this.config.escalateTimeoutMs,
          );
        }),
      ]);
    } catch (error) {
      this.#deps.metrics?.escalationHookFailures.inc({ kind: report.kind });
      this.emit('hookFailed', error instanceof Error ? error : new Error(String(error)), report);
    } finally {
      clearTimeout(timer);
    }
  }

  #every(ms: number, fn: () => Promise<unknown>): void {
    const tick = () => {
      if (this.#stopped) return;
      fn()
        .catch((error: unknown) => this.emit('error', error as Error))
        .finally(() => {
          if (!this.#stopped) this.#schedule(ms, tick);
        });
    };
    this.#schedule(ms, tick);
  }

  #nightly(): void {
    const hour = (this.config.nightly as { atUtcHour: number }).atUtcHour;
    const now = Date.now();
    let next = Math.floor(now / DAY) * DAY + hour * 3_600_000;
    if (next <= now) next += DAY;
    this.#schedule(next - now, () => {
      this.runNightly()
        .catch((error: unknown) => this.emit('error', error as Error))
        .finally(() => {
          if (!this.#stopped) this.#nightly();
        });
    });
  }

  #schedule(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }
}
