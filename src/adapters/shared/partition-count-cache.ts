import type { OutgoingRecord } from '../../core/envelope.ts';

/**
 * A publisher's partition counts per topic, each trusted for `maxAgeMs`. Counts only grow, so a stale
 * one sends a key to a partition it still may use until the count is read again. A topic not found is
 * never remembered: it is looked for again on the next call.
 */
export class PartitionCountCache {
  readonly #maxAgeMs: number;
  readonly #counts = new Map<string, { partitions: number; at: number }>();

  constructor(maxAgeMs: number) {
    this.#maxAgeMs = maxAgeMs;
  }

  /** The fresh counts of the records' topics, and the topics whose count must be read again. */
  lookup(records: OutgoingRecord[], now: number): { counts: Map<string, number>; stale: string[] } {
    const counts = new Map<string, number>();
    const stale: string[] = [];
    for (const topic of new Set(records.map((r) => r?.topic))) {
      if (typeof topic !== 'string') continue;
      const cached = this.#counts.get(topic);
      if (cached && now - cached.at < this.#maxAgeMs) counts.set(topic, cached.partitions);
      else stale.push(topic);
    }
    return { counts, stale };
  }

  remember(topic: string, partitions: number, now: number): void {
    this.#counts.set(topic, { partitions, at: now });
  }
}
