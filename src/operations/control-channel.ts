import {
  CONTROL_TOPIC,
  type ControlMessage,
  type ProducerMarks,
  type Receipts,
  type ResendRequest,
  decodeControl,
  encodeControl,
} from '../core/control-message.ts';
import type { IncomingRecord, OutgoingRecord } from '../core/envelope.ts';
import { classifyError, errorSummary, ZerolossError } from '../core/errors.ts';
import type { Publisher, Subscriber, Subscription } from '../ports/transport.ts';

/**
 * Both ends of the control channel (see core/control-message.ts). The channel is advisory: every message on
 * it asks for or reports something the databases can confirm, so a lost control message costs a later
 * repeat, never a business message. Senders therefore retry in the background and never block their caller.
 */

export interface ControlHandlers {
  'resend-request'?: (message: ResendRequest, record: IncomingRecord) => Promise<void>;
  'producer-marks'?: (message: ProducerMarks, record: IncomingRecord) => Promise<void>;
  receipts?: (message: Receipts, record: IncomingRecord) => Promise<void>;
}

export interface ControlListenerOptions {
  subscriber: Subscriber;
  /** Each listening service reads the whole channel in its own group. */
  groupId: string;
  topic?: string;
  handlers: ControlHandlers;
  /** A record that is not a valid control message: skipped (and counted by the caller), never retried. */
  onInvalid?: (error: ZerolossError, record: IncomingRecord) => void;
  /**
   * A handler failed: the record is tried again after a delay doubling from `retryDelayMs` up to
   * `maxRetryDelayMs` (its offset is not committed), and so are the later records of its partition.
   */
  onError?: (error: Error) => void;
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /**
   * Attempts of a record whose handler keeps failing for a reason of its own (not an outage of the store or
   * broker, which is waited out however long it lasts). After that many, or at once for a non-retryable
   * error, the record is skipped: `onError` gets a ZL_CONTROL_SKIPPED error and its offset is committed.
   * Skipping is safe because the channel is advisory (see above); retrying forever would hold back every
   * later control message of its partition. Default 10.
   */
  maxAttempts?: number;
}

/** The store or broker is not there: waited out however long it lasts, never a reason to skip. */
function isOutage(error: ZerolossError): boolean {
  return error.code === 'ZL_STORE_UNAVAILABLE' || error.code === 'ZL_TRANSPORT_UNAVAILABLE';
}

export interface ControlListener {
  close(): Promise<void>;
}

/**
 * Reads the control topic and hands each message to the handler of its kind, in partition order; a
 * partition's offset is committed only after its handlers resolved, so a crash re-reads what was not done
 * (handlers must be idempotent: a resend request answered twice resends twice, and the inbox keeps the
 * effect once). Kinds without a handler are committed past.
 */
export async function listenControl(options: ControlListenerOptions): Promise<ControlListener> {
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  const maxRetryDelayMs = Math.max(options.maxRetryDelayMs ?? 30_000, retryDelayMs);
  const maxAttempts = Math.max(1, options.maxAttempts ?? 10);
  const chains = new Map<string, Promise<void>>();
  let pending = 0;
  let closed = false;
  let subscription: Subscription | undefined;
  const backlog: Array<{ topic: string; partition: number; records: IncomingRecord[] }> = [];
  /** Retry waits in progress: close ends them, so it never waits out a 30 s backoff. */
  const waits = new Set<() => void>();
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waits.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waits.add(done);
    });

  const handle = async (record: IncomingRecord): Promise<void> => {
    let message: ControlMessage;
    try {
      message = decodeControl(record);
    } catch (error) {
      options.onInvalid?.(error as ZerolossError, record);
      return;
    }
    const handler = options.handlers[message.kind] as ((m: ControlMessage, r: IncomingRecord) => Promise<void>) | undefined;
    if (!handler) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await handler(message, record);
        return;
      } catch (thrown) {
        options.onError?.(thrown as Error);
        if (closed) throw thrown;
        const error = classifyError(thrown);
        if (!isOutage(error) && (!error.retryable || attempt >= maxAttempts)) {
          options.onError?.(
            new ZerolossError(
              'ZL_CONTROL_SKIPPED',
              `control ${message.kind} at ${record.topic}[${record.partition}]@${record.offset} skipped after ${attempt} attempt(s): ${errorSummary(error)}`,
              {
                cause: thrown,
                details: { kind: message.kind, partition: record.partition, offset: record.offset.toString(), attempts: attempt },
              },
            ),
          );
          return;
        }
        await wait(Math.min(retryDelayMs * 2 ** Math.min(attempt - 1, 20), maxRetryDelayMs));
        if (closed) throw thrown;
      }
    }
  };

  const run = (batch: { topic: string; partition: number; records: IncomingRecord[] }) => {
    const id = `${batch.topic}\u0000${batch.partition}`;
    pending++;
    if (pending > 8) subscription?.pause();
    const next = (chains.get(id) ?? Promise.resolve())
      .then(async () => {
        if (closed) return;
        let last: IncomingRecord | undefined;
        for (const record of batch.records) {
          await handle(record);
          last = record;
        }
        if (last) await subscription?.commit([{ topic: batch.topic, partition: batch.partition, offset: last.offset + 1n }]);
      })
      .catch((error: unknown) => {
        if (!closed) options.onError?.(error as Error);
      })
      .finally(() => {
        pending--;
        if (pending <= 2) subscription?.resume();
      });
    chains.set(id, next);
  };

  subscription = await options.subscriber.subscribe({
    groupId: options.groupId,
    topics: [options.topic ?? CONTROL_TOPIC],
    onRecords: (batch) => (subscription ? run(batch) : backlog.push(batch)),
    onRevoke: async () => {
      await Promise.all(chains.values());
    },
    onError: (error) => options.onError?.(error),
  });
  for (const batch of backlog.splice(0)) run(batch);

  return {
    async close() {
      closed = true;
      for (const done of [...waits]) done();
      await Promise.all(chains.values());
      await subscription?.close();
    },
  };
}

export interface ControlSenderOptions {
  publisher: Publisher;
  topic?: string;
  /** Messages waiting to be sent; the oldest are dropped past this (the channel is advisory). */
  maxQueued?: number;
  retryDelayMs?: number;
  onError?: (error: Error) => void;
}

/**
 * Sends control messages in the background: `send` queues and returns at once; one publish is in flight at a
 * time and carries everything queued. A failed publish is retried after `retryDelayMs`; `flush` waits until
 * the queue is empty (or the sender is closed).
 */
export class ControlSender {
  readonly #publisher: Publisher;
  readonly #topic: string;
  readonly #maxQueued: number;
  readonly #retryDelayMs: number;
  readonly #onError: (error: Error) => void;
  #queue: OutgoingRecord[] = [];
  #sending: Promise<void> | undefined;
  #closed = false;
  #dropped = 0;

  constructor(options: ControlSenderOptions) {
    this.#publisher = options.publisher;
    this.#topic = options.topic ?? CONTROL_TOPIC;
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#retryDelayMs = options.retryDelayMs ?? 1_000;
    this.#onError = options.onError ?? (() => {});
  }

  /** Messages dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  send(message: ControlMessage): void {
    if (this.#closed) return;
    // Encoded now: a malformed message is the caller's bug and throws here, not in the background.
    this.#queue.push(encodeControl(message, this.#topic));
    if (this.#queue.length > this.#maxQueued) {
      this.#dropped += this.#queue.length - this.#maxQueued;
      this.#queue.splice(0, this.#queue.length - this.#maxQueued);
    }
    this.#sending ??= this.#drain().finally(() => {
      this.#sending = undefined;
    });
  }

  async flush(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  /**
   * Sends what is queued, waiting at most `timeoutMs` (the broker may be down: a stopping consumer must not
   * hang on an advisory channel); what is still queued then is dropped and counted.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    this.#closed = true;
    this.#dropped += this.#queue.length;
    this.#queue = [];
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      const batch = this.#queue.splice(0, 500);
      let failed = batch;
      try {
        const outcomes = await this.#publisher.publish(batch);
        failed = batch.filter((_, i) => !outcomes[i]?.ok);
        if (failed.length === 0) continue;
        throw new ZerolossError('ZL_SEND_FAILED', `${failed.length} control message(s) not sent`, { retryable: true });
      } catch (error) {
        this.#queue.unshift(...failed);
        this.#onError(error as Error);
        await new Promise((resolve) => setTimeout(resolve, this.#retryDelayMs).unref());
      }
    }
  }
}
