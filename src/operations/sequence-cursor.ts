/** Unfilled ids kept while a writer stays open; past this, the lowest are given up. */
const MAX_GAP_IDS = 100_000;

interface Gap {
  lo: bigint;
  hi: bigint;
  /** The observation time of the round that found it empty: its ids were taken before then. */
  at: Date;
  /** The round that last looked for its ids. */
  round: number;
}

/**
 * Where a reader of a table keyed by a sequence (outbox_transition, sequence_alarm) stands, so that it reads
 * every row once although rows do not commit in id order: a transaction takes its id when it inserts, so the
 * one holding id 10 may commit after the one holding 11 was read. A cursor at the highest id read would pass
 * 10 for good; one that re-read everything above its lowest unfilled id would re-read all rows since the
 * oldest open transaction on every round.
 *
 * So the cursor keeps the highest id read (`after`) and the ranges below it that were empty when read (gaps).
 * Each round reads the rows above `after` and looks up the gaps' ids (primary-key probes, as a list of ids: a
 * list's length is what the planner expects, where ranges were each estimated at a share of the table and the
 * statement was JIT-compiled, 0.7 s instead of 27 ms); a row found fills its id, so no row is returned twice. A
 * gap can be empty for good (a rolled-back insert, a sequence value taken and not used) or still to fill (its
 * transaction runs): it is dropped once every transaction that could fill it has ended (`settle`, with
 * `CommitHorizon`'s quiet time). Its ids were taken before the read that found it empty, each by a statement
 * that inserts into the table and so holds the table's lock from before it took the value until its
 * transaction ends: a quiet time from an observation after that read (any later round's) says none is left.
 *
 * A gap is dropped only by a round that looked up its ids after the observation that made it quiet: a round
 * that failed part way drops nothing it did not look up.
 */
export class SequenceCursor {
  #after: bigint;
  #gaps: Gap[] = [];
  #round = 0;

  constructor(after: string) {
    this.#after = BigInt(after);
  }

  /**
   * One round: reads pages (`read` gets the ids above which to read, at most `limit`, and up to `limit` gap ids)
   * until nothing is left to read, handing each page's rows to `take` (every row is new), then drops the gaps
   * that `quiet` settles. `at`: this round's observation time, made before it reads.
   */
  async round<T extends { id: string }>(
    read: (after: string, gapIds: string[]) => Promise<T[]>,
    take: (rows: T[]) => void,
    at: Date,
    quiet: Date | undefined,
    limit: number,
  ): Promise<void> {
    this.#round++;
    for (let more = true; more; ) {
      const rows = await read(this.#after.toString(), this.#next(limit));
      take(rows);
      more = this.#advance(
        rows.map((r) => r.id),
        at,
        limit,
      );
    }
    this.#settle(quiet);
  }

  /** Up to `limit` gap ids this round has not looked up. */
  #next(limit: number): string[] {
    const ids: string[] = [];
    for (let i = 0; i < this.#gaps.length && ids.length < limit; i++) {
      const g = this.#gaps[i] as Gap;
      if (g.round === this.#round) continue;
      const room = BigInt(limit - ids.length);
      if (g.hi - g.lo >= room) {
        this.#gaps.splice(i + 1, 0, { ...g, lo: g.lo + room });
        g.hi = g.lo + room - 1n;
      }
      for (let id = g.lo; id <= g.hi; id++) ids.push(id.toString());
      g.round = this.#round;
    }
    return ids;
  }

  /**
   * Takes the ids one read returned (an id repeated when the read returns its row several times); `at` is this
   * round's observation time. Whether to read again: the part above `after` came back with `limit` ids, or
   * this round has gap ids still to look up.
   */
  #advance(ids: Iterable<string>, at: Date, limit: number): boolean {
    const above: bigint[] = [];
    const within: bigint[] = [];
    for (const text of new Set(ids)) {
      const id = BigInt(text);
      (id > this.#after ? above : within).push(id);
    }
    if (within.length > 0) this.#gaps = fill(this.#gaps, within.sort(byValue));
    let last = this.#after;
    for (const id of above.sort(byValue)) {
      if (id > last + 1n) this.#gaps.push({ lo: last + 1n, hi: id - 1n, at, round: this.#round });
      last = id;
    }
    this.#after = last;
    this.#cap();
    return above.length >= limit || this.#gaps.some((g) => g.round !== this.#round);
  }

  /**
   * Drops the gaps found before `quiet` (CommitHorizon) that this round looked up: every transaction that
   * could fill them has ended, and this round's reads, made after the observation that gave `quiet`, saw what
   * they committed.
   */
  #settle(quiet: Date | undefined): void {
    if (quiet) this.#gaps = this.#gaps.filter((g) => g.at >= quiet || g.round !== this.#round);
  }

  /** The gaps' ranges (from, to; both included), lowest first. */
  get gaps(): Array<[string, string]> {
    return this.#gaps.map((g) => [g.lo.toString(), g.hi.toString()]);
  }

  get after(): string {
    return this.#after.toString();
  }

  // A transaction this far behind (or this many ids rolled back while one stays open) is given up on: its
  // rows, if it ever commits, are not counted. The lowest gaps are the oldest.
  #cap(): void {
    let total = 0n;
    let keep = this.#gaps.length;
    while (keep > 0 && total < BigInt(MAX_GAP_IDS)) {
      const g = this.#gaps[keep - 1] as Gap;
      total += g.hi - g.lo + 1n;
      keep--;
    }
    if (total > BigInt(MAX_GAP_IDS)) {
      const g = this.#gaps[keep] as Gap;
      g.lo += total - BigInt(MAX_GAP_IDS);
    }
    this.#gaps.splice(0, keep);
  }
}

/** The gaps (sorted, disjoint) without the ids found in them (sorted). */
function fill(gaps: Gap[], found: bigint[]): Gap[] {
  const out: Gap[] = [];
  let i = 0;
  for (const g of gaps) {
    while (i < found.length && (found[i] as bigint) < g.lo) i++;
    let lo = g.lo;
    while (i < found.length && (found[i] as bigint) <= g.hi) {
      const id = found[i] as bigint;
      if (id > lo) out.push({ ...g, lo, hi: id - 1n });
      lo = id + 1n;
      i++;
    }
    if (lo <= g.hi) out.push({ ...g, lo });
  }
  return out;
}

function byValue(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
