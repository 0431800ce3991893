/** Observations kept while a writer stays open; past this, the oldest go (the quiet time then moves later). */
const MAX_PENDING = 10_000;

/**
 * When a table was last quiet for a reader that has passed some of its rows: the latest observed time by which
 * every transaction then writing the table has ended (committed or rolled back), so whatever any of them wrote
 * is visible to a read made now, or never will be.
 *
 * Each round lists the transactions writing the table (`writers`: every transaction that has inserted into it
 * holds its lock until it ends; the store lists them) with the database's time, before the round reads any row.
 * An earlier observation's time becomes quiet once none of its writers is listed any more. Only transactions
 * that touched the table count: a long transaction elsewhere (a batch job, another database of the cluster)
 * holds nothing back, as it would if the snapshot's oldest running transaction id (`pg_snapshot_xmin`) were
 * waited for, which would stop the applied count for as long as any job anywhere runs. A fixed wait instead
 * would miss a transaction that runs longer (a slow handler, a relay stuck on the broker); this waits for those,
 * however long.
 */
export class CommitHorizon {
  #pending: Array<{ at: Date; writers: ReadonlySet<string> }> = [];
  #quiet: Date | undefined;

  /** Takes this round's observation (made before the round's reads); returns the quiet time, if any yet. */
  observe(now: Date, writers: readonly string[]): Date | undefined {
    const current = new Set(writers);
    this.#pending.push({ at: now, writers: current });
    // A writer still open now that was listed at an observation is listed at every later one, so the
    // observations passed form a prefix.
    let passed = 0;
    while (passed < this.#pending.length && !overlaps(this.#pending[passed]?.writers, current)) passed++;
    if (passed > 0) {
      this.#quiet = this.#pending[passed - 1]?.at;
      this.#pending.splice(0, passed);
    }
    // What a dropped observation would have made quiet, a later one makes quiet once it is passed itself.
    if (this.#pending.length > MAX_PENDING) this.#pending.splice(0, this.#pending.length - MAX_PENDING);
    return this.#quiet;
  }
}

function overlaps(a: ReadonlySet<string> | undefined, b: ReadonlySet<string>): boolean {
  for (const x of a ?? []) if (b.has(x)) return true;
  return false;
}
