import { CONTROL_NAME_MAX, type Receipts } from '../core/control-message.ts';
import type { ProcessedEvent } from './consumer-events.ts';

export interface ReceiptReporterOptions {
  /** Where receipts go: a `ControlSender` (queues and returns at once; publishes in the background). */
  sender: { send(message: Receipts): void };
  groupId: string;
  /** A receipts message is sent once this many ids wait. Default 500. */
  maxBatch?: number;
  /** ...or this long after the first of them. Default 1,000 ms. */
  intervalMs?: number;
  /** Sender trouble (a receipt that could not be queued); never thrown to the effect path. */
  onError?: (error: Error) => void;
}

/**
 * The consuming side of two-way confirmation: each message whose effect committed (the consumer's
 * `processed` event, outcome processed or duplicate) is reported to the producer in a `receipts` control
 * message, batched by count and time. It runs after the commit and only queues, so it never blocks or fails
 * the effect path. Receipts are advisory — the consumer's inbox is the authority: one lost in a crash is sent
 * again when the message is redelivered (a duplicate is receipted too), or never.
 */
export class ReceiptReporter {
  readonly #options: ReceiptReporterOptions;
  readonly #maxBatch: number;
  readonly #intervalMs: number;
  #waiting: Receipts['applied'] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #soon: ReturnType<typeof setImmediate> | undefined;
  #closed = false;

  constructor(options: ReceiptReporterOptions) {
    this.#options = options;
    this.#maxBatch = options.maxBatch ?? 500;
    this.#intervalMs = options.intervalMs ?? 1_000;
  }

  /** For `consumer.on('processed', reporter.processed)`. */
  readonly processed = (event: ProcessedEvent): void => {
    if (this.#closed || event.messageId === '') return;
    // Past the control schema's limit an entry would fail the whole receipts message: skipped, not sent.
    if ([event.messageId, event.producerId, event.topic].some((v) => v.length > CONTROL_NAME_MAX)) return;
    this.#waiting.push({ messageId: event.messageId, producerId: event.producerId, topic: event.topic });
    // A full batch goes on the next turn, not inside the emit: encoding it is no part of the effect's path.
    if (this.#waiting.length >= this.#maxBatch) this.#soon ??= setImmediate(() => this.flush());
    else this.#timer ??= setTimeout(() => this.flush(), this.#intervalMs).unref();
  };

  /** Hands what waits to the sender now, in messages of at most `maxBatch` ids. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#soon) clearImmediate(this.#soon);
    this.#timer = undefined;
    this.#soon = undefined;
    const at = new Date().toISOString();
    while (this.#waiting.length > 0) {
      const applied = this.#waiting.splice(0, this.#maxBatch);
      try {
        this.#options.sender.send({ kind: 'receipts', group: this.#options.groupId, at, applied });
      } catch (error) {
        this.#options.onError?.(error as Error);
      }
    }
  }

  /** Sends what waits and takes no more (call before closing the sender). */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
