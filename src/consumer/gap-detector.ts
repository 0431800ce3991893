/**
 * Loss detection without handler code (C9). Producers number their messages gaplessly per (producer id,
 * key) in `zl-seq`; one key lives in one partition, so the consumer sees each sequence in order and can
 * report a jump (a gap: messages missing) or a repeat (a duplicate or a replay).
 *
 * State is in memory and per assignment: after a restart or a reassignment, the first record of each
 * (producer, key) sets the baseline, so a gap spanning that moment is left to reconciliation (O2).
 */
export interface SequenceEvent {
  kind: 'gap' | 'duplicate';
  topic: string;
  partition: number;
  producerId: string;
  key: string;
  /** The sequence number that should have come next. */
  expected: number;
  received: number;
  /** For a gap: how many numbers were skipped. */
  missing: number;
}

export class GapDetector {
  readonly #last = new Map<string, number>();
  readonly #maxTracked: number;

  /** Remembers at most `maxTracked` (producer, key) pairs, forgetting the least recently seen. */
  constructor(maxTracked = 100_000) {
    this.#maxTracked = maxTracked;
  }

  /** Feeds one record in partition order; returns the anomaly it shows, if any. Sequence 0 means "not sequenced". */
  observe(topic: string, partition: number, producerId: string, key: string, seq: number): SequenceEvent | undefined {
    if (!(seq > 0) || producerId === '') return undefined;
    const id = `${topic}\u0000${partition}\u0000${producerId}\u0000${key}`;
    const last = this.#last.get(id);
    if (last !== undefined && seq <= last) {
      return { kind: 'duplicate', topic, partition, producerId, key, expected: last + 1, received: seq, missing: 0 };
    }
    // Re-insert so Map order is recency order, and the oldest pair is the first to go.
    this.#last.delete(id);
    this.#last.set(id, seq);
    if (this.#last.size > this.#maxTracked) this.#last.delete(this.#last.keys().next().value as string);
    if (last !== undefined && seq > last + 1) {
      return { kind: 'gap', topic, partition, producerId, key, expected: last + 1, received: seq, missing: seq - last - 1 };
    }
    return undefined;
  }

  /** Forgets a partition's sequences when it is taken away: its next owner starts a fresh baseline. */
  forgetPartition(topic: string, partition: number): void {
    const prefix = `${topic}\u0000${partition}\u0000`;
    for (const id of this.#last.keys()) if (id.startsWith(prefix)) this.#last.delete(id);
  }

  get tracked(): number {
    return this.#last.size;
  }
}
