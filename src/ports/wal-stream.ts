import type { OutgoingRecord } from '../core/envelope.ts';
import type { RelaySource } from './outbox-store.ts';

/** One outbox row as its insert was decoded from the log: the stored bytes, ready to send. */
export interface WalRow {
  /** The outbox row's handle (seq_id), as in `ClaimedRow.ref`. */
  ref: string;
  messageId: string;
  /**
   * Inserted for the stream (state 1: the outbox's insert-only mode, docs/wal-relay.md): its send is recorded
   * in the batch's row of `outbox_wal_batch`, not by updating the row. Otherwise (state 0) by an update.
   */
  insertOnly?: boolean;
  /** Where its transaction's commit ends, set when the commit arrives (undefined on a part that is not the last). */
  commitEnd?: string;
  record: OutgoingRecord;
}

/**
 * One committed transaction's outbox inserts, in insert order, or a part of them: a transaction with more
 * rows than the handler's `partRows` comes in parts, so one large transaction (a bulk job enqueuing a
 * million messages) is never held in memory whole.
 */
export interface WalCommit {
  /**
   * Where the commit record ends: acknowledging it confirms this transaction and everything before it.
   * Undefined on a part that is not the transaction's last: it confirms nothing (a reading that ends
   * before the last part replays the whole transaction).
   */
  endLsn: string | undefined;
  rows: WalRow[];
}

export interface WalStreamHandler {
  /** The most rows handed over at once: a larger transaction comes in parts of this size. */
  readonly partRows: number;
  /** Called in commit order. */
  commit(commit: WalCommit): void;
  /** The stream ended (connection lost, server stopped): the relay starts it again from the confirmed position. */
  end(error: Error | undefined): void;
  /** Whether every commit handed over so far is sent, recorded and confirmed (nothing queued or in flight). */
  caughtUp(): boolean;
}

/** A running read of the slot; only one exists per slot at a time (the server admits one reader). */
export interface WalStreamSession {
  /** Confirms every transaction up to the one whose commit ends at `endLsn`. */
  acknowledge(endLsn: string): Promise<void>;
  /** Stops reading from the socket (flow control) until `resume`. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * The slot side of the WAL relay. `open` starts reading at the slot's confirmed position (never where a
 * previous session stopped receiving); it rejects with ZL_LOCK_BUSY while another instance reads the
 * slot and ZL_INVALID_CONFIG when the slot does not exist.
 */
export interface WalStream {
  readonly slot: string;
  open(handler: WalStreamHandler): Promise<WalStreamSession>;
}

export interface WalFailure {
  ref: string;
  error: string;
  /** Due after this long; 0 for a row held back behind its key's failure. */
  delayMs: number;
  /** Whether this counts as an attempt of the row (not when a topic or an earlier row was at fault). */
  charge: boolean;
  /** Not sent at all: an earlier row of its key failed, now or before. */
  heldBack: boolean;
}

/** A row the broker confirmed, as the WAL relay hands it to its ledger. */
export interface WalSent {
  ref: string;
  partition?: number;
  offset?: bigint;
  /** `WalRow.insertOnly`: recorded in the batch's row, not on the outbox row. */
  insertOnly?: boolean;
  /** The end of its transaction's commit (undefined for a part of a large one that is not its last). */
  commitEnd?: string;
}

/** What the WAL relay records in the outbox. */
export interface WalLedger {
  /**
   * Records a batch: sent rows as sent (on the row, or for insert-only rows in one row for the batch) and
   * failed rows state 2 (for the polling path). Resolves to how many sent rows were recorded now: the others
   * were recorded as sent before (a replay: duplicates). `endLsn`: the batch's last whole commit.
   */
  record(sent: WalSent[], failed: WalFailure[], batch?: { endLsn?: string }): Promise<{ sent: number }>;
  /**
   * Message keys (of any topic) that have a row waiting for the polling path: their later rows must not
   * overtake it, also once `divert --move-unsent` moved it to another topic.
   */
  heldKeys(): Promise<Set<string>>;
  /** The outbox as a polling source that claims failed rows only. */
  readonly retrySource: RelaySource;
}
