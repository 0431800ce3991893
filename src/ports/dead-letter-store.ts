import type { Database, SqlExecutor } from './sql-executor.ts';
/** A message that will not be retried any more, with its original bytes and why (C7, O7). */
export interface DeadLetterInput {
  groupId: string;
  /** Dedup key of the dead letter: the idempotency key, or `offset:<topic>/<partition>/<offset>` for unreadable records. */
  idempotencyKey: string;
  messageId: string | undefined;
  /** Where the message was first consumed from (the main topic, also for copies from retry topics). */
  topic: string;
  partition: number;
  offset: bigint;
  key: string;
  type: string | undefined;
  headers: Record<string, string>;
  payload: Buffer;
  errorCode: string;
  error: string;
  stack: string | undefined;
  attempts: number;
  firstFailureAt: Date;
  lastFailureAt: Date;
  /** Structured facts about the failure, e.g. both content digests of a message id conflict. */
  details?: Record<string, unknown>;
}

export type DeadLetterStatus = 'dead' | 'replayed' | 'discarded';

export interface DeadLetterSummary {
  id: string;
  groupId: string;
  topic: string;
  partition: number;
  offset: string;
  key: string;
  type: string | null;
  messageId: string | null;
  errorCode: string;
  error: string;
  attempts: number;
  status: DeadLetterStatus;
  createdAt: Date;
  lastFailureAt: Date;
  replayCount: number;
}

export interface DeadLetterDetail extends DeadLetterSummary {
  idempotencyKey: string;
  headers: Record<string, string>;
  payload: Buffer;
  stack: string | null;
  firstFailureAt: Date;
  details: Record<string, unknown> | null;
  publishedAt: Date | null;
  /** Why the copy on `<topic>.dlq` was not written (the topic refused it for good); null when it was, or is pending. */
  copyError: string | null;
  resolvedAt: Date | null;
  resolvedBy: string | null;
}

/**
 * The consumer's half: record a dead letter once, then note what became of its copy on the DLQ topic.
 * The row is the dead letter; the topic copy is for other tools and may be refused (too large, say).
 */
export interface DeadLetterWriter {
  /**
   * `inserted: false` when the same key is already dead (a redelivery or duplicate copy); `published` and
   * `copyError` say whether that row's copy was written or refused for good already.
   */
  record(input: DeadLetterInput): Promise<{ id: string; inserted: boolean; published: boolean; copyError: string | null }>;
  markPublished(id: string): Promise<void>;
  /** The DLQ topic refused the copy for good (`error` says why): the dead letter lives in the table alone. */
  markCopyRejected(id: string, error: string): Promise<void>;
}

export interface DeadLetterFilter {
  status?: DeadLetterStatus;
  topic?: string;
  groupId?: string;
  limit?: number;
  /** Paging: only ids below this one. */
  before?: string;
}

/** The operator's half (list, show, replay, discard), used by `zeroloss dlq`. */
export interface DeadLetterQueue {
  list(filter?: DeadLetterFilter): Promise<DeadLetterSummary[]>;
  get(id: string): Promise<DeadLetterDetail | undefined>;
  /**
   * Hands the original record to `send` while holding the row, in a transaction of `database` (`tx`), and
   * marks it replayed only if `send` succeeded. Replays go back through the consumers' inboxes, so
   * replaying twice applies nothing twice. With `skipDiscarded`, a dead letter discarded since it was listed
   * (by another operator) is refused with ZL_MESSAGE_NOT_FOUND, unsent; a replayed one replays again (safe).
   */
  replay(
    id: string,
    actor: string,
    send: (record: { topic: string; key: string; value: Buffer; headers: Record<string, string> }, tx: SqlExecutor) => Promise<void>,
    options?: { skipDiscarded?: boolean },
  ): Promise<boolean>;
  /** The database the dead letters live in. */
  readonly database?: Database;
  discard(id: string, actor: string): Promise<boolean>;
}
