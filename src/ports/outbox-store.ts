import type { OutgoingRecord } from '../core/envelope.ts';
import type { SqlExecutor } from './sql-executor.ts';

export const MESSAGE_STATE = { pending: 0, sent: 1, failed: 2, parked: 3 } as const;
export type MessageState = (typeof MESSAGE_STATE)[keyof typeof MESSAGE_STATE];

/** A row to insert, fully encoded: the bytes stored are the bytes every attempt sends. */
export interface OutboxRow {
  messageId: string;
  topic: string;
  key: string;
  type: string;
  traceId: string;
  producerId: string;
  headers: Record<string, string>;
  payload: Buffer;
}

/** A row leased to one relay instance for one send attempt. */
export interface ClaimedRow {
  /** Store-local handle (outbox seq id or source row id). */
  ref: string;
  messageId: string;
  record: OutgoingRecord;
  /** Attempt number of this send, 1-based. */
  attempt: number;
  state: MessageState;
  /**
   * Set when an earlier claim of this row recorded no outcome (its holder died or hung, perhaps after the
   * broker acknowledged the send): when that claim's lease ended, in ms since the epoch. The relay then
   * asks the broker for the message before sending it again. Sources that cannot tell leave it unset.
   */
  previousLeaseUntilMs?: number;
}

export interface SentOutcome {
  ref: string;
  partition?: number;
  offset?: bigint;
}

export interface FailedOutcome {
  ref: string;
  error: string;
  /**
   * 'retry' marks the row failed (2) and waits delayMs; 'park' stops it until a person acts; 'release'
   * gives the claim back untouched (the row was never attempted).
   */
  action: 'retry' | 'park' | 'release';
  delayMs: number;
  /**
   * Whether this attempt counts towards maxAttempts. A broker outage fails every row alike and says
   * nothing about the row itself, so it is recorded but not charged: an outage never parks rows.
   */
  charge: boolean;
}

export interface BacklogStats {
  pending: number;
  failed: number;
  parked: number;
  oldestUnsentAgeMs: number;
  /** Milliseconds until the next failed row is due; undefined when nothing waits. */
  nextDueInMs: number | undefined;
}

/** What a source's cheap check found (`RelaySource.anyDue`). */
export interface DueCheck {
  /** A row is due and not leased. */
  due: boolean;
  /**
   * Changes when a row is added (the outbox's newest id): a relay whose claims found every due row held back
   * by another claimer's rows claims again at once only when it changed. Undefined: the source cannot say.
   */
  newest?: string;
}

/** Where a relay reads messages from: the dedicated outbox table or a business table's state column. */
export interface RelaySource {
  readonly name: string;
  claim(owner: string, limit: number, leaseMs: number): Promise<ClaimedRow[]>;
  markSent(owner: string, sent: SentOutcome[]): Promise<void>;
  /** Returns the message ids that were parked by this call. */
  markFailed(owner: string, failed: FailedOutcome[]): Promise<string[]>;
  backlog(): Promise<BacklogStats>;
  /**
   * Cheap check (an index probe, whatever the backlog holds) whether any row could be claimed now: due and
   * not leased. Sources that have it are polled with it every `pollIntervalMs`; others sleep until the
   * next due row their backlog reports.
   */
  anyDue?(): Promise<DueCheck>;
  /** Channel whose notifications mean "a new row was committed"; undefined for poll-only sources. */
  readonly wakeChannel: string | undefined;
}

/** Where one committed message stands, as the outbox row records it. */
export interface SendStatus {
  messageId: string;
  state: MessageState;
  /** The topic the row is (or was) sent to: a divert rule may have changed it at enqueue. */
  topic: string;
  /** What the broker acknowledged; undefined until sent, and for a transport that reports none. */
  partition: number | undefined;
  offset: bigint | undefined;
  sentAt: Date | undefined;
  /** The last failed attempt's error, kept after a later success. */
  lastError: string | undefined;
  attempts: number;
}

/** The write half the application calls inside its own transaction. */
export interface OutboxWriter {
  insert(tx: SqlExecutor, row: OutboxRow, sequencing: boolean): Promise<{ seq: number }>;
  /**
   * Reads the committed rows of these message ids in one statement, outside any transaction; ids with no
   * row are absent from the result. What `outbox.whenSent` polls. A writer with no connection of its own
   * (built for enqueue only) omits it or rejects with ZL_INVALID_CONFIG.
   */
  sendStatus?(messageIds: string[]): Promise<SendStatus[]>;
}
