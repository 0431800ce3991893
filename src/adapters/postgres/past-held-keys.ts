/**
 * When to run a claim's second form, the one that leaves out held keys (wal-sql.ts `retryClaimPastHeldKeys`,
 * state-column-sql.ts `lockPastHeldKeys`): after a claim that found due rows but took none, except within a
 * second of a second form that took none either. That form scans for the keys' holders; when the rows are all
 * held by other claimers' leases (instances sharing a backlog of few keys), each of their empty claims would
 * pay that scan. A key held with a batch of rows behind it keeps the second form taking rows, so it then runs
 * every round. (The outbox's second form is cheap unless a key is stuck, and runs after every empty claim.)
 */
export class PastHeldKeys {
  #quietUntil = Number.NEGATIVE_INFINITY;
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * `took`: whether a claim took rows. `sawDue`: whether the first found due rows at all (when it can tell;
   * a claim that found none has no held keys to look past).
   */
  async claim<T>(
    first: T,
    took: (claim: T) => boolean,
    pastHeldKeys: () => Promise<T>,
    sawDue: (claim: T) => boolean = () => true,
  ): Promise<T> {
    if (took(first) || !sawDue(first) || this.#now() < this.#quietUntil) return first;
    const second = await pastHeldKeys();
    if (!took(second)) this.#quietUntil = this.#now() + QUIET_MS;
    return second;
  }
}

const QUIET_MS = 1_000;
