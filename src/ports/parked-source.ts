import type { OutboxRowView, ReconcileStore, ResendStore } from './operations-store.ts';

/**
 * What the intervention tools need from a relay source other than the outbox table — a business table
 * carrying its own send-state column (`StateColumnSource`): its parked rows, and a person's release or
 * discard of them. Every action is audited by the source in the same statement.
 */
export interface ParkedSource {
  readonly name: string;
  parkedRows(limit: number): Promise<SourceRowView[]>;
  /** Parked → pending with a full set of attempts; `ids` are message ids or `<source>:<row id>`; returns those released. */
  release(ids: string[], actor: string, reason: string | undefined): Promise<string[]>;
  /** Given up for good; the business row is never deleted. Returns the ids discarded. */
  discard(ids: string[], actor: string, reason: string): Promise<string[]>;
}

/** A parked row of a state-column source. */
export interface SourceRowView {
  source: string;
  rowId: string;
  /** Null when the row was parked before it could be encoded (its mapping failed): name it `<source>:<rowId>`. */
  messageId: string | null;
  key: string | null;
  type: string | null;
  state: number;
  attempts: number;
  lastError: string | null;
  modifiedAt: Date;
}

/**
 * Finds a message of a state-column source by its id, in the outbox row's shape (trace, resend): the row's
 * send state and bookkeeping, the envelope stored at its first claim, and the topic its mapping gives.
 */
export interface SourceMessageLookup {
  readonly name: string;
  messageRow(messageId: string): Promise<OutboxRowView | undefined>;
}

/**
 * What reconcile needs from a state-column source: its window of messages and the ack-vs-state repair (the
 * same shapes as the outbox's), resend for the repair of what the broker lost, and the rows it cannot check
 * by message id.
 */
export interface SourceReconcile extends Pick<ReconcileStore, 'outboxWindow' | 'markSentFromBroker'>, ResendStore, UnbuiltStore {
  readonly name: string;
}

/**
 * A committed business row of a source that reconcile cannot check by message id:
 * - `unclaimed`: no relay has claimed it yet, so it has no message id (made at the first claim);
 * - `unencodable`: parked at its first claim because the mapping could not build its message;
 * - `unmappable`: built before its topic and key were stored (migration 012), and the mapping that would
 *   give them fails now.
 */
export interface UnbuiltRow {
  /** The message id when there is one, else `<source>:<row id>` (the name parked list and release take). */
  id: string;
  rowId: string;
  messageId: string | null;
  kind: 'unclaimed' | 'unencodable' | 'unmappable';
  /** The business row's state column. */
  state: number;
  /** Since the row's creation time (its modified time when the source declares none). */
  ageMs: number;
  error: string | null;
  /** A person should look: an unclaimed row older than the stuck threshold, any unencodable or unmappable row. */
  stuck: boolean;
}

export interface UnbuiltRows {
  /** Every such row of the window; `rows` lists at most the limit asked for, in id order. */
  count: number;
  stuck: number;
  rows: UnbuiltRow[];
}

/** Rows of a window (on the creation-time column, else the modified time) that have no message reconcile can check. */
export interface UnbuiltStore {
  unbuiltRows(window: { from: Date; to: Date }, stuckAfterMs: number, limit: number): Promise<UnbuiltRows>;
}
