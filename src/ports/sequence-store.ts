import type { SqlExecutor } from './sql-executor.ts';

/**
 * Consecutive producer sequences of one (topic, producer, key) applied in one effect transaction, in the
 * order they were applied. `offset` is that of the last one.
 */
export interface SequenceRun {
  topic: string;
  partition: number;
  producerId: string;
  key: string;
  firstSeq: number;
  lastSeq: number;
  offset: bigint;
}

/** A range of a producer's sequence that a consumer group has not applied. */
export interface SequenceGap {
  id: string;
  groupId: string;
  topic: string;
  partition: number;
  producerId: string;
  key: string;
  /** The first number still missing (moves up as the front is filled) … */
  fromSeq: number;
  /** … and the last one, both included. */
  toSeq: number;
  /** Found from the producer's marks (a loss at the tail), not from a later record. */
  tail: boolean;
  /** For a tail gap: the offset of the producer's last message, which the group must have read past. */
  atOffset: bigint | null;
  detectedAt: Date;
  healedAt: Date | null;
  alarmedAt: Date | null;
  repairRequests: number;
  repairRequestedAt: Date | null;
  nextRepairAt: Date | null;
  /** How long it has been open, and whether the next repair request may go, both by the database's clock. */
  ageMs: number;
  repairDue: boolean;
}

/** What one effect transaction changed: gaps it found, gaps it healed. */
export interface SequenceChanges {
  found: SequenceGap[];
  healed: SequenceGap[];
}

/**
 * The consumer's persistent loss detection (C9): the highest applied sequence per (group, topic, producer,
 * key), written in the effect transaction, and the gaps between what was applied.
 */
export interface SequenceStore {
  /**
   * Inside the effect transaction: moves the marks up to the runs, records a gap where a run starts past its
   * mark + 1 (a key seen for the first time sets the baseline, no gap), and fills open gaps a run covers the
   * front of. One statement for all runs.
   */
  recordRuns(tx: SqlExecutor, groupId: string, runs: SequenceRun[]): Promise<SequenceChanges>;
  /** Open gaps of a group, oldest first. */
  openGaps(groupId: string, limit: number): Promise<SequenceGap[]>;
  /** Heals open gaps every missing number of which this group dead-lettered (not lost: set aside). */
  healDeadLettered(groupId: string): Promise<SequenceGap[]>;
  /** Marks gaps alarmed and records each in the sequence_alarm trail (kind 'gap'), once; returns the ids it alarmed. */
  markAlarmed(ids: string[]): Promise<string[]>;
  /**
   * Counts one more repair request for a gap if its count is still `requestsSeen` (nobody requested since);
   * the next may go `backoffMs` later. True when this call counted it: only then is the request sent.
   */
  markRepairRequested(id: string, backoffMs: number, requestsSeen: number): Promise<boolean>;
  /** The highest applied sequences of (topic, producer, key) triples; absent when the group never applied one. */
  appliedSeqs(groupId: string, keys: Array<{ topic: string; producerId: string; key: string }>): Promise<Map<string, number>>;
  /**
   * Records a tail gap (the producer sent up to `toSeq`, the group applied only up to `fromSeq - 1`); an open
   * gap of the key starting at the same number is extended instead.
   */
  recordTailGap(groupId: string, gap: TailGap): Promise<void>;
  /** Per group (all, or those named): what is open. For `zeroloss status`. */
  gapSummary(groups?: string[]): Promise<GapSummary[]>;
}

export interface TailGap {
  topic: string;
  partition: number;
  producerId: string;
  key: string;
  fromSeq: number;
  toSeq: number;
  atOffset: bigint;
}

export interface GapSummary {
  groupId: string;
  /** Open gaps, and of them those open past the alarm threshold, and those found at the tail. */
  open: number;
  alarmed: number;
  tail: number;
  /** Sequence numbers still missing. */
  missing: number;
  oldest: Date | null;
  /** The most resend requests any open gap has had. */
  repairRequests: number;
}

/** A state-column source as the control channel names it: its rows' messages carry `producerId`. */
export interface SequenceSource {
  readonly name: string;
  readonly producerId: string;
}

/** The producing side of the control channel: what a resend request and the producer marks read. */
export interface ProducerSequenceStore {
  /**
   * Message ids of the rows of (producer, topic, key) with sequence numbers in [fromSeq, toSeq], in sequence
   * order: outbox rows (`source` null), and rows of the state-column sources named in `sources` (whose
   * producer id is `producerId`: the sequence is shared), each with its source's name.
   */
  idsInRange(range: {
    producerId: string;
    topic: string;
    key: string;
    fromSeq: number;
    toSeq: number;
    sources?: readonly string[];
  }): Promise<Array<{ messageId: string; source: string | null }>>;
  /**
   * Per (producer, topic, key) of the rows sent and created (a source's row: first claimed) in the last
   * `withinMs`, the newest sequence with the partition and offset it was acknowledged at; the outbox's rows
   * and those of `sources`.
   */
  recentSentMarks(
    withinMs: number,
    limit: number,
    sources?: readonly SequenceSource[],
  ): Promise<Array<{ producerId: string; topic: string; key: string; seq: number; partition: number; offset: bigint }>>;
}

/** One key of `appliedSeqs`' answer. */
export function sequenceKey(topic: string, producerId: string, key: string): string {
  return `${topic}\u0000${producerId}\u0000${key}`;
}
