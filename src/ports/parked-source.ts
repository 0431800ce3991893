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
 * same shapes as the outbox's), and resend for the repair of what the broker lost.
 */
export interface SourceReconcile extends Pick<ReconcileStore, 'outboxWindow' | 'markSentFromBroker'>, ResendStore {
  readonly name: string;
}
