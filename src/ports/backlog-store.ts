/**
 * What the degrade switches and the forward record keep in the business database (migration 014). One
 * adapter (PostgresBacklogStore) implements both.
 */

/** A named switch for non-core work: while it is on, handlers and consumers that read it do less. */
export interface DegradeSwitch {
  name: string;
  on: boolean;
  /** When it last changed. */
  since: Date;
  /** Who changed it last (a person, or `backlog-policy`). */
  by: string;
  reason: string | null;
}

export interface DegradeStore {
  switches(): Promise<DegradeSwitch[]>;
  /**
   * Sets a switch and writes its audit row in the same statement; `details` go into the audit. Returns the
   * switch and whether it changed (setting it to what it already is changes nothing and audits nothing).
   */
  setSwitch(
    name: string,
    on: boolean,
    actor: string,
    reason: string | undefined,
    details?: Record<string, unknown>,
  ): Promise<{ switch: DegradeSwitch; changed: boolean }>;
}

/** Offsets [from, to) of one partition of the source topic. */
export interface ForwardRange {
  partition: number;
  from: string;
  to: string;
}

/** One `backlog forward` run, as recorded before it copied and completed after. */
export interface ForwardRun {
  id: string;
  startedAt: Date;
  /** null: the run did not finish (it is running, or its process died midway). */
  finishedAt: Date | null;
  from: string;
  to: string;
  group: string;
  toPartitions: number;
  ranges: ForwardRange[];
  /** Records in the ranges when the run started. */
  planned: number;
  forwarded: number;
  error: string | null;
  /** The run this one repeated (`forward --again`). */
  againOf: string | null;
  actor: string;
  reason: string | null;
}

export interface ForwardLog {
  /** Records a run about to copy; returns its id. */
  startForward(run: Omit<ForwardRun, 'id' | 'startedAt' | 'finishedAt' | 'forwarded' | 'error'>): Promise<string>;
  finishForward(id: string, forwarded: number, error: string | undefined): Promise<void>;
  forwardRun(id: string): Promise<ForwardRun | undefined>;
  /** The newest runs first, of one source topic if given. */
  forwardRuns(limit: number, from?: string): Promise<ForwardRun[]>;
}
