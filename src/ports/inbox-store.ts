import type { SqlExecutor } from './sql-executor.ts';

/** What the inbox records about an applied effect. */
export interface InboxEntry {
  groupId: string;
  idempotencyKey: string;
  messageId: string;
  topic: string;
  partition: number;
  offset: bigint;
  /**
   * Digest of the message's content (see content-digest.ts), when the idempotency key is the message id.
   * Stored with the row; a later claim of the same key with another digest is a different message under a
   * known id, not a duplicate. Absent for handler-chosen keys, which legitimately span messages.
   */
  contentDigest?: string;
  /** The producer's sequence of the message (C9), when it has one; the inbox itself does not store it. */
  sequence?: { producerId: string; key: string; seq: number };
  /**
   * The key the message's dead letter is recorded under (the dead-letter stage's; default `idempotencyKey`).
   * An open dead letter under it parks the message; null for an operator's replay of that dead letter
   * (`zl-replay-of`), which is applied though the row is still open: the replay marks it only once the
   * copy is on the broker.
   */
  deadLetterKey?: string | null;
}

/**
 * What the inbox found for one entry: the key is new (apply the effect), applied before by this very
 * message (a duplicate: write nothing), applied before by a message with other content under the same
 * message id (a conflict: write nothing, and never count it as a duplicate), or parked: the key has an open
 * dead letter (a resent copy, or a redelivery after the dead letter committed and the offset did not). A
 * parked message is not applied behind its dead letter, where it would also come after its key's later
 * messages; a replay of the dead letter applies it.
 */
export type Claim = { kind: 'claimed' } | { kind: 'duplicate' } | { kind: 'conflict'; appliedDigest: string } | { kind: 'dead-lettered' };

/** The dedup authority (C4): a unique row per (consumer group, idempotency key), written with the effect. */
export interface InboxStore {
  /**
   * Runs inside the effect transaction, before the handler. 'claimed': the key is now recorded and the
   * effect may be applied; otherwise it was applied before and the transaction must write nothing. Digests
   * are compared only when both rows have one (rows written before migration 7 have none).
   */
  claim(tx: SqlExecutor, entry: InboxEntry): Promise<Claim>;
  /**
   * `claim` for several entries in one statement (a shared effect transaction). Entries with the same key:
   * only the first can be claimed. Rows are locked in key order, so two batches never deadlock on each
   * other. Keys already present cost one more statement, to read their digests; new keys cost nothing more.
   */
  claimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<Claim[]>;
  /** Deletes rows that this same transaction claimed and whose effect it will not apply after all. */
  unclaimMany(tx: SqlExecutor, entries: InboxEntry[]): Promise<void>;
  /**
   * Whether the effect under the key was applied. With `contentDigest` (the key is a message id), only by
   * this very message: another message under its id is not its duplicate (the effect stage makes it a
   * conflict dead letter).
   */
  contains(groupId: string, idempotencyKey: string, contentDigest?: string): Promise<boolean>;
  /** Deletes up to `limit` rows older than `olderThanMs`; returns how many. */
  cleanup(groupId: string, olderThanMs: number, limit: number): Promise<number>;
  /** Records the next offset to read of a partition through `executor` (the effect transaction, P10); never moves it back. */
  storeOffset(executor: SqlExecutor, groupId: string, topic: string, partition: number, nextOffset: bigint): Promise<void>;
  /** The stored next offsets of a group's partitions. */
  loadOffsets(groupId: string, topics: string[]): Promise<Array<{ topic: string; partition: number; offset: bigint }>>;
}

/** One delivered record, as the start log knows it. */
export interface StartRef {
  groupId: string;
  topic: string;
  partition: number;
  offset: bigint;
  messageId: string | undefined;
  /** On release: the number of the attempt that failed (charged to the retry policy), kept with the mark. */
  failedAttempt?: number;
}

/** A first start: how many attempts of the record failed before (it was redelivered after a crash). */
export interface FirstStart {
  failed: number;
}

/**
 * Durable count of handler starts per delivered record (C7 poison detection). A record is finished when its
 * offset is committed; a record started again before that crashed or lost its process the previous time.
 */
export interface StartLog {
  /**
   * Records a first start and returns it (a store that keeps no failure counts may return true); returns
   * false, counting nothing, when an earlier start never finished.
   */
  firstStart(ref: StartRef): Promise<FirstStart | boolean>;
  /** Counts one more start (of a suspect, run alone); returns the total and the most attempts that failed before. */
  countStart(ref: StartRef): Promise<{ started: number; failed: number }>;
  /**
   * Takes back a start that ended without a crash (failed, out of turn, abandoned on revoke or stop); with
   * `failedAttempt`, keeps that the attempt failed, for the next first start after a crash.
   */
  release(ref: StartRef): Promise<void>;
  /** Forgets the marks below a committed offset. */
  forget(groupId: string, topic: string, partition: number, committedOffset: bigint): Promise<void>;
}
