import type { MessageState } from './outbox-store.ts';

/**
 * What the operations tools read and write in the business database, split by tool so each takes only
 * the part it needs. One adapter (PostgresOperationsStore) implements them all.
 */

export interface OutboxRowView {
  seqId: string;
  messageId: string;
  topic: string;
  key: string;
  type: string;
  traceId: string;
  producerId: string;
  keySeq: number;
  state: MessageState;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  modifiedAt: Date;
  nextAttemptAt: Date;
  leaseOwner: string | null;
  leaseUntil: Date | null;
  sentAt: Date | null;
  sentPartition: number | null;
  sentOffset: bigint | null;
  /**
   * Pending because it waits in the WAL stream (the insert-only mode: no batch lists it yet), not for the
   * polling path: no attempt, no next-attempt time applies to it.
   */
  inStream: boolean;
}

export interface InboxHit {
  groupId: string;
  idempotencyKey: string;
  messageId: string;
  topic: string;
  partition: number;
  offset: bigint;
  processedAt: Date;
}

export interface DeadLetterHit {
  id: string;
  groupId: string;
  messageId: string;
  topic: string;
  partition: number;
  offset: bigint;
  status: 'dead' | 'replayed' | 'discarded';
  errorCode: string;
  error: string;
  attempts: number;
  createdAt: Date;
  resolvedAt: Date | null;
  resolvedBy: string | null;
  replayCount: number;
}

export interface StoredOffset {
  groupId: string;
  topic: string;
  partition: number;
  offset: bigint;
}

export interface BrokerPosition {
  messageId: string;
  partition: number;
  offset: bigint;
  timestampMs: number;
}

export interface ReconcileStore {
  /** Rows committed in the window, in (created_at, seq) order, after `after`. */
  outboxWindow(
    window: { from: Date; to: Date },
    topics: string[] | undefined,
    after: OutboxCursor | undefined,
    limit: number,
  ): Promise<Array<OutboxRowView & { cursor: OutboxCursor }>>;
  inboxByMessageIds(ids: string[]): Promise<InboxHit[]>;
  deadLettersByMessageIds(ids: string[]): Promise<DeadLetterHit[]>;
  storedOffsets(groups: string[]): Promise<StoredOffset[]>;
  /** P5: rows not yet marked sent whose message the broker holds become sent, without a resend. */
  markSentFromBroker(found: BrokerPosition[], actor: string): Promise<string[]>;
  startRun(kind: string, window: { from: Date; to: Date }): Promise<string>;
  /** With `held`, the run is stored held (O8): every id it would have re-published, for a person to approve. */
  finishRun(id: string, verdict: string, report: unknown, held?: string[]): Promise<void>;
  /** Those of `ids` a held run holds (O8), waiting for a person's approval. */
  heldIds(ids: string[]): Promise<string[]>;
}

/** A reconciliation run held for a person (O8): too many missing messages to re-publish automatically. */
export interface HeldRun {
  id: string;
  kind: string;
  windowFrom: Date;
  windowTo: Date;
  finishedAt: Date;
  verdict: string;
  /** How many ids the run holds. */
  held: number;
}

export interface HeldRunStore {
  /** Runs still held, oldest first, at most `limit`. */
  heldRuns(limit: number): Promise<HeldRun[]>;
  /**
   * Takes a held run for re-publishing: 'held' becomes 'approved' (with who, when, why, and an audit row) in
   * one statement, so of two approvals only one gets the ids. Undefined when the run is not held.
   */
  approveHeld(id: string, actor: string, reason: string): Promise<string[] | undefined>;
  /** Why a run is not held: undefined (no such run), or its status and approval. */
  runHold(id: string): Promise<{ status: string | null; approvedBy: string | null; approvedAt: Date | null } | undefined>;
  /** Records the approval's outcome, or with `undefined` gives the run back to 'held' (nothing was re-published). */
  settleApproval(id: string, outcome: Record<string, unknown> | undefined): Promise<void>;
}

export interface ResendRow {
  seqId: string;
  messageId: string;
  topic: string;
  key: string;
  headers: Record<string, string>;
  payload: Buffer;
  state: MessageState;
}

export type ResendSelector = { window: { from: Date; to: Date }; topics?: string[] } | { ids: string[]; topics?: string[] };

export interface ResendStore {
  resendRows(selector: ResendSelector, afterSeqId: string, limit: number): Promise<ResendRow[]>;
  /** Records the new position of resent sent rows (a 1→1 transition and an audit row); returns their ids. */
  recordResent(
    sent: Array<{ messageId: string; partition: number | null; offset: bigint | null }>,
    actor: string,
    reason: string,
  ): Promise<string[]>;
}

export interface Transition {
  from: number;
  to: number;
  attempt: number;
  error: string | null;
  actor: string;
  at: Date;
}

export interface AuditEntry {
  id: string;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  messageId?: string | null;
  reason: string | null;
  details?: Record<string, unknown>;
}

/** Where a page of inbox rows ended: the database's own text of processed_at keeps its microseconds. */
export interface InboxCursor {
  at: string;
  groupId: string;
  idempotencyKey: string;
}

/** Where a page of outbox rows ended: the database's own text of created_at keeps its microseconds. */
export interface OutboxCursor {
  at: string;
  seqId: string;
}

export interface TraceStore {
  outboxRow(messageId: string): Promise<OutboxRowView | undefined>;
  /** Outbox rows committed in [from, to), of one topic, state and key if given, in commit order, after `after`. */
  outboxRows(
    filter: { window: { from: Date; to: Date }; topic?: string; state?: MessageState; key?: string },
    after: OutboxCursor | undefined,
    limit: number,
  ): Promise<Array<OutboxRowView & { cursor: OutboxCursor }>>;
  /** Inbox rows processed in [from, to), of one group and topic if given, newest first, after `before`. */
  inboxRows(
    filter: { window: { from: Date; to: Date }; groupId?: string; topic?: string },
    before: InboxCursor | undefined,
    limit: number,
  ): Promise<Array<InboxHit & { cursor: InboxCursor }>>;
  transitions(messageId: string): Promise<Transition[]>;
  auditForMessage(messageId: string): Promise<AuditEntry[]>;
  inboxByMessageIds(ids: string[]): Promise<InboxHit[]>;
  deadLettersByMessageIds(ids: string[]): Promise<DeadLetterHit[]>;
}

export interface OutboxSummary {
  pending: number;
  failed: number;
  parked: number;
  stuck: number;
  oldestUnsentAgeMs: number;
  /** The WAL relay's insert-only mode is on: new rows are sent only by a relay reading a slot (docs/wal-relay.md). */
  insertOnly: boolean;
}

export interface SequenceAlarm {
  id: string;
  at: Date;
  groupId: string;
  kind: 'gap' | 'duplicate';
  topic: string;
  partition: number;
  producerId: string;
  key: string;
  expected: number;
  received: number;
  missing: number;
}

export interface ReconcileRunSummary {
  id: string;
  kind: string;
  windowFrom: Date;
  windowTo: Date;
  startedAt: Date;
  finishedAt: Date;
  verdict: string;
}

/** Unsent rows of one topic; `topicUnavailable` of them last failed because the topic was missing or refused. */
export interface TopicBacklog {
  topic: string;
  unsent: number;
  topicUnavailable: number;
  /** The latest such error, which says why (missing or not authorized). */
  topicError: string | null;
}

export interface StatusStore {
  /**
   * The outbox's counts by state (`summary`; rows unsent for longer than `stuckAfterMs` are stuck) and its
   * unsent rows by topic, together: what both need to know first (in the insert-only mode, where the rows
   * still in the WAL stream begin) is read once for the two.
   */
  outboxBacklog(stuckAfterMs: number): Promise<{ summary: OutboxSummary; byTopic: TopicBacklog[] }>;
  parkedRows(limit: number, topic?: string): Promise<OutboxRowView[]>;
  throughput(
    windowMs: number,
    groups: string[] | undefined,
  ): Promise<Array<{ groupId: string; topic: string; partition: number; applied: number }>>;
  knownGroups(): Promise<string[]>;
  storedOffsets(groups: string[]): Promise<StoredOffset[]>;
  openDeadLetters(): Promise<Array<{ groupId: string; open: number }>>;
  recentAlarms(sinceMs: number, limit: number): Promise<SequenceAlarm[]>;
  lastRuns(limit: number): Promise<ReconcileRunSummary[]>;
  /** Reconciliation runs held for a person (O8), oldest first. */
  heldRuns(limit: number): Promise<HeldRun[]>;
}

export interface NewAuditEntry {
  actor: string;
  action: string;
  subject: string;
  messageId?: string;
  reason?: string;
  details?: Record<string, unknown>;
}

export interface InterventionStore {
  parkedRows(limit: number, topic?: string): Promise<OutboxRowView[]>;
  /** Parked → pending, attempts 0; returns the ids released. */
  release(ids: string[], actor: string, reason: string | undefined): Promise<string[]>;
  /** Deletes parked rows, their content kept in the audit; returns the ids discarded. */
  discard(ids: string[], actor: string, reason: string): Promise<string[]>;
  audit(entry: NewAuditEntry): Promise<void>;
  recentAudit(sinceMs: number, limit: number): Promise<AuditEntry[]>;
  /** Deletes the positions a group stored with its effects (P10) on `topics`; returns what went. */
  deleteStoredOffsets(groupId: string, topics: string[]): Promise<StoredOffset[]>;
  /** Wakes relays listening on the outbox channel. */
  wakeRelays(): Promise<void>;
}

export type RetentionTable = 'outbox' | 'inbox' | 'dead_letter' | 'reconcile_run' | 'sequence_alarm';

export interface RetentionStore {
  /** Deletes one batch of rows of `table` older than `olderThanMs`; returns how many. */
  deleteBatch(table: RetentionTable, olderThanMs: number, limit: number): Promise<number>;
}

export interface DivertRule {
  topic: string;
  type: string;
  target: string;
  createdAt: Date;
  createdBy: string;
  reason: string | null;
}

export interface DivertStore {
  divertRules(): Promise<DivertRule[]>;
  setDivert(topic: string, types: string[], target: string, actor: string, reason: string | undefined): Promise<void>;
  removeDivert(topic: string, types: string[]): Promise<string[]>;
  divertUnsent(topic: string, types: string[], target: string): Promise<number>;
  audit(entry: NewAuditEntry): Promise<void>;
}

export interface AlarmStore {
  recordAlarm(groupId: string, alarm: Omit<SequenceAlarm, 'id' | 'at' | 'groupId'>): Promise<void>;
}

/**
 * The transactions writing the tables the metrics collector counts (any id that names one transaction while
 * it runs), listed in one statement with the database's time. Postgres: those holding a lock on the table
 * other than a plain read's, which every transaction that inserted a row (or waits to) holds until it ends.
 * What the collector waits on before it passes rows that may still commit (src/operations/commit-horizon.ts).
 */
export interface TableWriters {
  now: Date;
  transition: string[];
  alarm: string[];
  inbox: string[];
}

/**
 * What the metrics collector reads: changes since a cursor. Transition and alarm ids come from sequences
 * taken at insert time, so rows commit out of id order: the reads look up the ids below the cursor still
 * unfilled (`gapIds`, src/operations/sequence-cursor.ts) besides the ids above it.
 */
export interface CollectorStore {
  cursors(): Promise<{ transition: string; alarm: string }>;
  tableWriters(): Promise<TableWriters>;
  /**
   * Transitions with ids above `afterId` (the first `limit` of them) and with ids `gapIds`, in id order; a
   * batch transition once per row it lists, all with its id.
   */
  transitionsSince(
    afterId: string,
    limit: number,
    gapIds?: string[],
  ): Promise<Array<{ id: string; from: number; to: number; attempt: number; actor: string; sinceCommitSeconds: number | null }>>;
  appliedBetween(from: Date, to: Date): Promise<Array<{ groupId: string; processedAt: Date; endToEndSeconds: number | null }>>;
  /** Alarms with ids above `afterId` (the first `limit`) and with ids `gapIds`, in id order. */
  alarmsSince(
    afterId: string,
    limit?: number,
    gapIds?: string[],
  ): Promise<Array<{ id: string; groupId: string; kind: string; topic: string }>>;
  outboxSummary(stuckAfterMs: number): Promise<OutboxSummary>;
  openDeadLetters(): Promise<Array<{ groupId: string; open: number }>>;
  knownGroups(): Promise<string[]>;
  storedOffsets(groups: string[]): Promise<StoredOffset[]>;
}
