/**
 * Where one record stands in its key's line, so that several records of one key can be in progress at once
 * (group commit along a key) while their effects still apply in key order.
 *
 * - `waiting`: not in an attempt (not started yet, or between attempts: a retry delay, an outage backoff).
 * - `active`: starting an attempt: past the key order stage, its poison start mark being taken.
 * - `ready`: marked; its effect waits to go to the batcher right behind its predecessor's.
 * - `submitted`: its effect is queued in the batcher, whose next flush has not happened yet.
 * - `running`: its effect transaction has started.
 * - `settled`: finished (applied, duplicate, dead-lettered, retried on a topic, or abandoned).
 *
 * A record's effect may share a transaction with its predecessor's only when it follows it in the same
 * flush; it never waits for a transaction holding a start mark. So a record takes its mark only behind a
 * predecessor that is itself starting (`active` or `ready`: this one can still follow it into its flush)
 * or settled; behind a retry delay, a submitted or a running transaction it waits unmarked: a crash while
 * a long or hanging handler runs ahead of it must not make it a poison suspect that never ran.
 */
export type TicketState = 'waiting' | 'active' | 'ready' | 'submitted' | 'running' | 'settled';

export class LaneTicket {
  #state: TicketState = 'waiting';
  #previous: LaneTicket | undefined;
  #next: LaneTicket | undefined;
  #failed = false;
  #alone = false;
  #watchers: Array<() => void> = [];

  constructor(previous: LaneTicket | undefined) {
    if (previous) previous.#next = this;
    this.#previous = previous?.unsettledSelfOrBefore();
  }

  get state(): TicketState {
    return this.#state;
  }

  get settled(): boolean {
    return this.#state === 'settled';
  }

  /** Whether an attempt of this record failed: its successors then wait for it to settle, one at a time. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Whether this record is a poison suspect, whose attempts run alone in the process (poison-guard.ts). */
  get alone(): boolean {
    return this.#alone;
  }

  runAlone(): void {
    this.#alone = true;
  }

  /**
   * The nearest record before this one in the lane that has not settled. Records settle out of order (one
   * dead-lettered at decoding, or a duplicate, finishes before the message ahead of it is applied), so a
   * settled predecessor hands on to its own predecessor, never to "nothing ahead".
   */
  get previous(): LaneTicket | undefined {
    this.#previous = this.#previous?.unsettledSelfOrBefore();
    return this.#previous;
  }

  unsettledSelfOrBefore(): LaneTicket | undefined {
    let ticket: LaneTicket | undefined = this;
    while (ticket?.settled) ticket = ticket.#previous;
    return ticket;
  }

  /**
   * Whether an attempt may start (and take a start mark): the predecessor settled, or is itself starting an
   * attempt that has not failed and whose effect has not gone to the batcher yet, so this one can follow it
   * into its flush.
   */
  get mayStart(): boolean {
    const p = this.previous;
    return p === undefined || ((p.state === 'active' || p.state === 'ready') && !p.failed);
  }

  /**
   * The first of the records following this one into its flush that is still taking its start mark: this
   * one's effect waits for it (one round trip at most) rather than leave it behind, marked, behind a
   * transaction it can no longer join. Followers are the unbroken run of `active` and `ready` records after
   * this one; the run is bounded by the lane's depth.
   */
  get followerStarting(): LaneTicket | undefined {
    for (let t = this.#next; t; t = t.#next) {
      if (t.settled || t.state === 'ready') continue;
      return t.state === 'active' && !t.failed ? t : undefined;
    }
    return undefined;
  }

  set(state: TicketState): void {
    if (this.#state === 'settled' || this.#state === state) return;
    this.#state = state;
    // Shortens the line kept alive behind a settled ticket to what is still unsettled.
    if (state === 'settled') this.#previous = this.#previous?.unsettledSelfOrBefore();
    const watchers = this.#watchers;
    this.#watchers = [];
    for (const wake of watchers) wake();
  }

  fail(): void {
    this.#failed = true;
    this.set('waiting');
  }

  /** Resolves at the next change of state. */
  changed(): Promise<void> {
    if (this.settled) return Promise.resolve();
    return new Promise((resolve) => this.#watchers.push(resolve));
  }

  /**
   * Calls `fn` synchronously at the next change of state (at once if settled): a follower's effect then
   * reaches the batcher in the very turn its predecessor's did, whatever the process's slots are doing.
   */
  onChange(fn: () => void): void {
    if (this.settled) fn();
    else this.#watchers.push(fn);
  }
}

/**
 * Thrown to a record that cannot follow its predecessor into its transaction (that one's transaction runs
 * already, or failed, or that one went back to waiting): nothing of it ran; it takes back its start mark,
 * waits for its turn unmarked, and tries again. Not an attempt, so it costs the record no retry.
 */
export class OutOfTurnError extends Error {
  constructor() {
    super('a record of this key ahead of this one has not been applied yet');
    this.name = 'OutOfTurnError';
  }
}
