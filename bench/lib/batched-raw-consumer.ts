import type { IncomingRecord } from '../../src/core/envelope.ts';
import type { Database, SqlExecutor } from '../../src/ports/sql-executor.ts';
import type { Subscriber, Subscription } from '../../src/ports/transport.ts';
import { Watermarks } from './watermarks.ts';

interface Queued {
  record: IncomingRecord;
  lane: string;
}

/**
 * The honest ceiling for the consumer benchmark (#18): the best at-least-once consumer we could write with
 * the same subscriber and effect, and no inbox. Ready records are applied in transactions of up to
 * `maxMessages` (the zeroloss consumer's group-commit size), several transactions in parallel; per-key order
 * is kept by never taking a record whose key is in a running transaction or behind a record left waiting.
 * Offsets are committed every `commitIntervalMs` up to the first unfinished record of each partition.
 */
export class BatchedRawConsumer {
  readonly #subscriber: Subscriber;
  readonly #db: Database;
  readonly #effect: (tx: SqlExecutor, record: IncomingRecord) => Promise<void>;
  readonly #maxMessages: number;
  readonly #maxTransactions: number;
  readonly #maxInFlight: number;
  readonly #watermarks = new Watermarks();
  #queue: Queued[] = [];
  readonly #busyLanes = new Set<string>();
  #running = 0;
  #inFlight = 0;
  #paused = false;
  #subscription: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #idle: (() => void) | undefined;
  onDone: (record: IncomingRecord) => void = () => {};
  onReceived: (records: IncomingRecord[]) => void = () => {};

  constructor(options: {
    subscriber: Subscriber;
    db: Database;
    effect: (tx: SqlExecutor, record: IncomingRecord) => Promise<void>;
    maxMessages?: number;
    maxTransactions?: number;
    maxInFlight?: number;
  }) {
    this.#subscriber = options.subscriber;
    this.#db = options.db;
    this.#effect = options.effect;
    this.#maxMessages = options.maxMessages ?? 16;
    this.#maxTransactions = options.maxTransactions ?? 8;
    this.#maxInFlight = options.maxInFlight ?? 500;
  }

  async start(groupId: string, topics: string[], commitIntervalMs = 200): Promise<void> {
    this.#subscription = await this.#subscriber.subscribe({
      groupId,
      topics,
      onRecords: (batch) => {
        this.onReceived(batch.records);
        this.#watermarks.arrived(batch.records);
        for (const record of batch.records) {
          this.#queue.push({ record, lane: `${record.topic}\u0000${record.partition}\u0000${record.key}` });
          this.#inFlight++;
        }
        if (!this.#paused && this.#inFlight >= this.#maxInFlight) {
          this.#paused = true;
          this.#subscription?.pause();
        }
        this.#dispatch();
      },
    });
    this.#timer = setInterval(() => void this.#commit().catch(() => {}), commitIntervalMs);
  }

  /** Starts transactions while there is room: each takes the oldest records whose keys are free. */
  #dispatch(): void {
    while (this.#running < this.#maxTransactions && this.#queue.length > 0) {
      const taken: Queued[] = [];
      const blocked = new Set(this.#busyLanes);
      const left: Queued[] = [];
      for (const q of this.#queue) {
        if (taken.length < this.#maxMessages && !blocked.has(q.lane)) taken.push(q);
        else {
          // A record left waiting blocks its key for everything behind it: key order.
          blocked.add(q.lane);
          left.push(q);
        }
      }
      if (taken.length === 0) return;
      this.#queue = left;
      for (const q of taken) this.#busyLanes.add(q.lane);
      this.#running++;
      void this.#apply(taken);
    }
  }

  async #apply(taken: Queued[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      for (const q of taken) await this.#effect(tx, q.record);
    });
    this.#running--;
    for (const q of taken) {
      this.#busyLanes.delete(q.lane);
      this.#watermarks.finished(q.record);
      this.#inFlight--;
      this.onDone(q.record);
    }
    if (this.#paused && this.#inFlight < this.#maxInFlight) {
      this.#paused = false;
      this.#subscription?.resume();
    }
    this.#dispatch();
    if (this.#running === 0 && this.#queue.length === 0) this.#idle?.();
  }

  async #commit(): Promise<void> {
    const offsets = this.#watermarks.committable();
    if (offsets.length > 0) await this.#subscription?.commit(offsets);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#subscription?.pause();
    if (this.#running > 0 || this.#queue.length > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    await this.#commit().catch(() => {});
    await this.#subscription?.close();
  }
}
