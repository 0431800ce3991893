import type { IncomingRecord } from '../../src/core/envelope.ts';

interface Part {
  topic: string;
  partition: number;
  offsets: bigint[];
  done: Set<bigint>;
  next: number;
}

/**
 * The baselines' offset bookkeeping (at-least-once): records are noted as they arrive and as their effects
 * commit, and the offsets to commit are, per partition, one past the last record of the finished prefix.
 */
export class Watermarks {
  readonly #parts = new Map<string, Part>();

  /** Notes arrivals, in offset order per partition. */
  arrived(records: readonly IncomingRecord[]): void {
    for (const record of records) {
      const id = `${record.topic}\u0000${record.partition}`;
      let part = this.#parts.get(id);
      if (!part) {
        part = { topic: record.topic, partition: record.partition, offsets: [], done: new Set(), next: 0 };
        this.#parts.set(id, part);
      }
      part.offsets.push(record.offset);
    }
  }

  finished(record: IncomingRecord): void {
    this.#parts.get(`${record.topic}\u0000${record.partition}`)?.done.add(record.offset);
  }

  /** The offsets to commit now: partitions whose finished prefix grew since the last call. */
  committable(): Array<{ topic: string; partition: number; offset: bigint }> {
    const offsets: Array<{ topic: string; partition: number; offset: bigint }> = [];
    for (const part of this.#parts.values()) {
      const before = part.next;
      while (part.next < part.offsets.length && part.done.has(part.offsets[part.next] as bigint)) {
        part.done.delete(part.offsets[part.next] as bigint);
        part.next++;
      }
      if (part.next > before)
        offsets.push({ topic: part.topic, partition: part.partition, offset: (part.offsets[part.next - 1] as bigint) + 1n });
    }
    return offsets;
  }
}
