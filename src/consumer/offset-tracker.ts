/**
 * Per partition, the offsets delivered and not yet finished, and from them the offset that is safe to
 * commit (C2): the smallest unfinished offset, or one past the last delivered offset when all are finished.
 * Everything below a commit point has its effect durable (or is dead-lettered), so committing it can cause
 * redelivery at worst, never a loss.
 *
 * Contract with the transport: within one assignment, a partition's records arrive in offset order without
 * skipping a record (gaps are only offsets that hold no record: transaction markers, compaction). A record
 * at or below the last delivered offset is a redelivery of one already tracked and is refused.
 */
export interface PartitionRef {
  topic: string;
  partition: number;
}

interface PartitionState {
  epoch: number;
  /** Delivered offsets in order, from `head` on; earlier slots are finished and await compaction. */
  queue: bigint[];
  head: number;
  /** Finished offsets that are not at the head yet. */
  finished: Set<bigint>;
  lastDelivered: bigint;
  /** Commit point when nothing is pending. */
  next: bigint;
}

export class OffsetTracker {
  readonly #partitions = new Map<string, PartitionState>();
  #epochs = 0;
  #pending = 0;

  /**
   * Tracks a delivered record. Returns the partition epoch to hand back to `finish`, or undefined when
   * the offset was delivered before (a redelivery to ignore).
   */
  add(topic: string, partition: number, offset: bigint): number | undefined {
    const id = partitionId(topic, partition);
    let state = this.#partitions.get(id);
    if (!state) {
      state = { epoch: ++this.#epochs, queue: [], head: 0, finished: new Set(), lastDelivered: offset - 1n, next: offset };
      this.#partitions.set(id, state);
    }
    if (offset <= state.lastDelivered) return undefined;
    state.lastDelivered = offset;
    state.queue.push(offset);
    this.#pending++;
    return state.epoch;
  }

  /** Marks a record finished. Ignored when the partition was dropped (or re-added) since `add`. */
  finish(topic: string, partition: number, offset: bigint, epoch: number): void {
    const state = this.#partitions.get(partitionId(topic, partition));
    if (!state || state.epoch !== epoch) return;
    if (state.queue[state.head] !== offset) {
      if (!state.finished.has(offset) && contains(state.queue, state.head, offset)) {
        state.finished.add(offset);
        this.#pending--;
      }
      return;
    }
    this.#pending--;
    state.head++;
    while (state.head < state.queue.length && state.finished.delete(state.queue[state.head] as bigint)) state.head++;
    state.next = state.head < state.queue.length ? (state.queue[state.head] as bigint) : state.lastDelivered + 1n;
    if (state.head > 1024 && state.head * 2 > state.queue.length) {
      state.queue = state.queue.slice(state.head);
      state.head = 0;
    }
  }

  /** The next offset to read after a restart: everything below it is finished. */
  commitPoint(topic: string, partition: number): bigint | undefined {
    const state = this.#partitions.get(partitionId(topic, partition));
    if (!state) return undefined;
    return state.head < state.queue.length ? (state.queue[state.head] as bigint) : state.next;
  }

  /** Whether `epoch` is still the live tracking of this partition. */
  isCurrent(topic: string, partition: number, epoch: number): boolean {
    return this.#partitions.get(partitionId(topic, partition))?.epoch === epoch;
  }

  /** Forgets a partition (revoked): later `finish` calls for it are ignored. */
  drop(topic: string, partition: number): void {
    const id = partitionId(topic, partition);
    const state = this.#partitions.get(id);
    if (!state) return;
    this.#pending -= state.queue.length - state.head - state.finished.size;
    this.#partitions.delete(id);
  }

  /** Records delivered and not finished, over all partitions. */
  get pending(): number {
    return this.#pending;
  }

  /** Unfinished records of one partition. */
  pendingIn(topic: string, partition: number): number {
    const state = this.#partitions.get(partitionId(topic, partition));
    return state ? state.queue.length - state.head - state.finished.size : 0;
  }

  partitions(): PartitionRef[] {
    return [...this.#partitions.keys()].map(parsePartitionId);
  }
}

/** Binary search over the ascending delivered offsets from `from` on. */
function contains(queue: bigint[], from: number, offset: bigint): boolean {
  let lo = from;
  let hi = queue.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const value = queue[mid] as bigint;
    if (value === offset) return true;
    if (value < offset) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export function partitionId(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function parsePartitionId(id: string): PartitionRef {
  const at = id.lastIndexOf('\u0000');
  return { topic: id.slice(0, at), partition: Number(id.slice(at + 1)) };
}
