import { classifyError, errorSummary, ZerolossError } from '../core/errors.ts';
import { MESSAGE_STATE, type SendStatus } from '../ports/outbox-store.ts';

/** What the broker acknowledged for one message, as the relay recorded it: in the outbox row, or in the WAL relay's batch. */
export interface SentMessage {
  id: string;
  topic: string;
  /** Undefined only for a transport that reports no partition (or a row marked sent by reconciliation without one). */
  partition: number | undefined;
  offset: bigint | undefined;
  sentAt: Date;
}

export interface WhenSentOptions {
  /** How long to wait for the broker's ack; default 30 s. A timeout cancels nothing: the relay still sends the row. */
  timeoutMs?: number;
}

export const DEFAULT_WHEN_SENT_TIMEOUT_MS = 30_000;
/** setTimeout's limit (about 24.8 days): a longer delay fires at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;
/** The first poll comes this soon after a waiter arrives (a relay on the same database acks in milliseconds)… */
const FIRST_POLL_MS = 5;
/** …and the interval doubles per waiter up to this, so a slow relay costs at most five reads a second. */
const MAX_POLL_MS = 200;
/** Ids per statement: one index probe each; bounds the parameter size when thousands wait at once. */
const IDS_PER_POLL = 1_000;

type ReadStatus = (messageIds: string[]) => Promise<SendStatus[]>;

interface Waiter {
  id: string;
  resolve: (sent: SentMessage) => void;
  reject: (error: Error) => void;
  delayMs: number;
  dueAt: number;
  timeout: ReturnType<typeof setTimeout>;
  /** What the last poll saw, for the timeout's message. */
  last: SendStatus | undefined;
}

/**
 * The synchronous send mode: promises that settle when the relay has recorded the broker's ack of a
 * committed message. It only reads outbox rows, so the relay may run in any process. All waiters of one
 * outbox share one poll: each poll reads every waiting id in one statement, and is due when the earliest
 * waiter's own backoff (5 ms doubling to 200 ms) runs out, so polls are at least 5 ms apart however many
 * callers wait.
 */
export class SendWaiters {
  readonly #read: ReadStatus;
  readonly #outbox: string;
  readonly #waiters = new Set<Waiter>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #polling = false;
  #lastPollError: unknown;

  constructor(read: ReadStatus, outbox: string) {
    this.#read = read;
    this.#outbox = outbox;
  }

  whenSent(id: string, options: WhenSentOptions = {}): Promise<SentMessage> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WHEN_SENT_TIMEOUT_MS;
    if (typeof id !== 'string' || id.length === 0) {
      return Promise.reject(
        new ZerolossError('ZL_INVALID_CONFIG', 'whenSent needs a message id (enqueue returns it as envelope.id)', {
          details: { field: 'id' },
        }),
      );
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
      return Promise.reject(
        new ZerolossError(
          'ZL_INVALID_CONFIG',
          `whenSent timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${String(timeoutMs)}`,
          {
            details: { field: 'timeoutMs' },
          },
        ),
      );
    }
    return new Promise<SentMessage>((resolve, reject) => {
      const waiter: Waiter = {
        id,
        resolve,
        reject,
        delayMs: FIRST_POLL_MS,
        dueAt: Date.now() + FIRST_POLL_MS,
        last: undefined,
        timeout: setTimeout(() => this.#settle(waiter, undefined, this.#timeoutError(waiter, timeoutMs)), timeoutMs),
      };
      this.#waiters.add(waiter);
      this.#schedule(waiter.dueAt);
    });
  }

  /** Sets the poll timer to `dueAt` if that is sooner; without it, to the earliest waiter's (after a poll). */
  #schedule(dueAt?: number): void {
    if (this.#polling) return; // the running poll schedules the next one when it ends
    if (dueAt === undefined) {
      dueAt = Number.POSITIVE_INFINITY;
      for (const w of this.#waiters) dueAt = Math.min(dueAt, w.dueAt);
    }
    if (dueAt >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = dueAt;
    if (dueAt === Number.POSITIVE_INFINITY) return;
    this.#timer = setTimeout(() => void this.#poll(), Math.max(0, dueAt - Date.now()));
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#polling = true;
    const polled = [...this.#waiters];
    if (polled.length === 0) {
      this.#polling = false;
      return;
    }
    try {
      const ids = [...new Set(polled.map((w) => w.id))];
      const found = new Map<string, SendStatus>();
      for (let i = 0; i < ids.length; i += IDS_PER_POLL) {
        for (const status of await this.#read(ids.slice(i, i + IDS_PER_POLL))) found.set(status.messageId, status);
      }
      this.#lastPollError = undefined;
      for (const waiter of polled) this.#apply(waiter, found.get(waiter.id));
    } catch (error) {
      // A database away for a moment heals; a store that cannot answer at all (no connection, refused login) does not.
      this.#lastPollError = error;
      if (!classifyError(error).retryable) for (const waiter of polled) this.#settle(waiter, undefined, error as Error);
    } finally {
      const now = Date.now();
      for (const waiter of polled) {
        waiter.delayMs = Math.min(waiter.delayMs * 2, MAX_POLL_MS);
        waiter.dueAt = now + waiter.delayMs;
      }
      this.#polling = false;
      this.#schedule();
    }
  }

  #apply(waiter: Waiter, status: SendStatus | undefined): void {
    if (!this.#waiters.has(waiter)) return;
    waiter.last = status;
    if (status === undefined) {
      // Read after the caller's commit, a missing row never appears later: the transaction rolled back (or
      // whenSent ran before the commit, or retention already removed the sent row).
      this.#settle(
        waiter,
        undefined,
        new ZerolossError(
          'ZL_MESSAGE_NOT_FOUND',
          `message ${waiter.id} is not in the outbox ${this.#outbox}: its transaction rolled back or has not committed yet (call whenSent after the commit), or retention removed it`,
          { retryable: false, details: { id: waiter.id, outbox: this.#outbox } },
        ),
      );
    } else if (status.state === MESSAGE_STATE.sent) {
      this.#settle(waiter, {
        id: status.messageId,
        topic: status.topic,
        partition: status.partition,
        offset: status.offset,
        sentAt: status.sentAt ?? new Date(),
      });
    } else if (status.state === MESSAGE_STATE.parked) {
      this.#settle(
        waiter,
        undefined,
        new ZerolossError(
          'ZL_MESSAGE_PARKED',
          `message ${waiter.id} was parked after ${status.attempts} attempt(s): the send failed for good (${status.lastError ?? 'no error recorded'}); it stays in the outbox until a person releases or discards it`,
          { retryable: false, details: detailsOf(waiter.id, this.#outbox, status) },
        ),
      );
    }
  }

  #timeoutError(waiter: Waiter, timeoutMs: number): ZerolossError {
    const last = waiter.last;
    const seen =
      last === undefined
        ? 'not read yet'
        : `${stateName(last.state)}, ${last.attempts} attempt(s)${last.lastError ? `, last error: ${last.lastError}` : ''}`;
    const pollError = this.#lastPollError === undefined ? '' : `; the last poll failed: ${errorSummary(this.#lastPollError, 200)}`;
    return new ZerolossError(
      'ZL_SEND_TIMEOUT',
      `message ${waiter.id} was not acknowledged by the broker within ${timeoutMs} ms (${seen}${pollError}); nothing is cancelled: the message is kept in the outbox and the relay will still send it`,
      {
        retryable: true,
        ...(this.#lastPollError === undefined ? {} : { cause: this.#lastPollError }),
        details: { ...detailsOf(waiter.id, this.#outbox, last), timeoutMs },
      },
    );
  }

  #settle(waiter: Waiter, sent: SentMessage | undefined, error?: Error): void {
    if (!this.#waiters.delete(waiter)) return;
    clearTimeout(waiter.timeout);
    if (error) waiter.reject(error);
    else if (sent) waiter.resolve(sent);
    if (this.#waiters.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
    }
  }
}

function stateName(state: number): string {
  return (Object.entries(MESSAGE_STATE).find(([, value]) => value === state)?.[0] ?? String(state)) as string;
}

function detailsOf(id: string, outbox: string, status: SendStatus | undefined): Record<string, unknown> {
  return {
    id,
    outbox,
    ...(status === undefined
      ? {}
      : { state: stateName(status.state), topic: status.topic, attempts: status.attempts, lastError: status.lastError }),
  };
}
