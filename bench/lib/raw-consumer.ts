import { KeyLanes } from '../../src/consumer/key-lanes.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import type { Database, SqlExecutor } from '../../src/ports/sql-executor.ts';
import type { Subscriber, Subscription } from '../../src/ports/transport.ts';
import { Watermarks } from './watermarks.ts';

/**
 * The baseline consumer: at-least-once, no inbox. Records run with the same concurrency and per-key
 * order as the zeroloss consumer (one lane per key), each effect in its own transaction, and offsets are
 * committed every `commitIntervalMs` up to the first unfinished record of each partition. A redelivery
 * would apply its effect again: that is what the inbox exists to prevent.
 */
export class RawConsumer {
  readonly #subscriber: Subscriber;
  readonly #db: Database;
  readonly #effect: (tx: SqlExecutor, record: IncomingRecord) => Promise<void>;
  readonly #lanes: KeyLanes;
  readonly #watermarks = new Watermarks();
  #subscription: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #paused = false;
  readonly #maxInFlight: number;
  /** Called after each effect commits. */
  onDone: (record: IncomingRecord) => void = () => {};
  /** Called as records arrive. */
  onReceived: (records: IncomingRecord[]) => void = () => {};

  constructor(options: {
    subscriber: Subscriber;
    db: Database;
    effect: (tx: SqlExecutor, record: IncomingRecord) => Promise<void>;
    concurrency?: number;
    maxInFlight?: number;
  }) {
    this.#subscriber = options.subscriber;
    this.#db = options.db;
    this.#effect = options.effect;
    this.#lanes = new KeyLanes(options.concurrency ?? 16);
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
          this.#inFlight++;
          this.#lanes.push(`${record.topic}\u0000${record.partition}\u0000${record.key}`, async () => {
            await this.#db.transaction((tx) => this.#effect(tx, record));
            this.#watermarks.finished(record);
            this.#inFlight--;
            this.onDone(record);
            if (this.#paused && this.#inFlight < this.#maxInFlight) {
              this.#paused = false;
              this.#subscription?.resume();
            }
          });
        }
        if (!this.#paused && this.#inFlight >= this.#maxInFlight) {
          this.#paused = true;
          this.#subscription?.pause();
        }
      },
    });
    this.#timer = setInterval(() => void this.#commit().catch(() => {}), commitIntervalMs);
  }

  async #commit(): Promise<void> {
    const offsets = this.#watermarks.committable();
    if (offsets.length > 0) await this.#subscription?.commit(offsets);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#subscription?.pause();
    await this.#lanes.idle();
    await this.#commit().catch(() => {});
    await this.#subscription?.close();
  }
}
