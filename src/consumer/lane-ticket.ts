/**
 * Where one record stands in its key's line, so that several records of one key can be in progress at once
 * (group commit along a key) while their effects still apply in key order.
 *
 * - `waiting`: not in an attempt (not started yet, or between attempts: a retry delay, an outage backoff).
 * - `active`: in an attempt, before its effect is handed to the batcher (marking its start, say).
 * - `submitted`: its effect is queued in the batcher, whose next flush has not happened yet.
 * - `running`: its effect transaction has started.
 * - `settled`: finished (applied, duplicate, dead-lettered, retried on a topic, or abandoned).
 *
 * A record's effect may share a transaction with its predecessor's only when it follows it in the same
 * flush; otherwise it waits for the predecessor to settle. A record never starts an attempt while its
 * predecessor waits, so a key whose message is in a retry delay holds its later messages unmarked.
 */
export type TicketState = 'waiting' | 'active' | 'submitted' | 'running' | 'settled';

export class LaneTicket {
  #state: TicketState = 'waiting';
  #previous: LaneTicket | undefined;
  #failed = false;
  #watchers: Array<() => void> = [];

  constructor(previous: LaneTicket | undefined) {
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

  /** Whether an attempt may start: the predecessor settled, or is itself in an attempt that has not failed. */
  get mayStart(): boolean {
    const p = this.previous;
    return p === undefined || (p.state !== 'waiting' && !p.failed);
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
}

/**
 * Thrown to a record whose effect reached the batcher out of turn (its predecessor's transaction failed, or
 * it was not in the predecessor's flush): nothing of it ran; it waits for its turn and tries again. Not an
 * attempt, so it costs the record no retry.
 */
export class OutOfTurnError extends Error {
  constructor() {
    super('a record of this key ahead of this one has not been applied yet');
    this.name = 'OutOfTurnError';
  }
}
