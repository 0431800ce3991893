import type { SequenceEvent } from './gap-detector.ts';
import type { SequenceGap } from '../ports/sequence-store.ts';

export interface DeadLetterEvent {
  id: string;
  groupId: string;
  topic: string;
  partition: number;
  offset: bigint;
  messageId: string | undefined;
  type: string | undefined;
  errorCode: string;
  reason: string;
  attempts: number;
  /** False when this delivery found the message already dead (a redelivery or duplicate copy). */
  recorded: boolean;
}

/**
 * A copy for `<topic>.dlq` or `<topic>.retry.<n>` that the topic refused for good (too large, say). Never a
 * stall and never a loss: a dead letter stays in the dead_letter table alone, a retry runs in place.
 */
export interface CopyRejectedEvent {
  groupId: string;
  kind: 'dead-letter' | 'retry';
  /** The topic that refused the copy. */
  copyTopic: string;
  /** Where the message was first consumed from. */
  topic: string;
  partition: number;
  offset: bigint;
  messageId: string | undefined;
  /** The dead_letter row that holds the message (kind 'dead-letter'). */
  deadLetterId?: string;
  error: string;
}

/** A different message under a message id whose effect was applied before: dead-lettered, never skipped. */
export interface MessageIdConflictEvent {
  groupId: string;
  messageId: string;
  type: string | undefined;
  topic: string;
  partition: number;
  offset: bigint;
  /** Content digest of this message and of the one applied under the id before. */
  digest: string;
  appliedDigest: string;
  deadLetterId: string;
}

/**
 * A record that was running (not waiting) when its process died or lost it comes back: it runs alone, and
 * `crashes` counts the starts it never finished. At `poison.maxStarts` crashes it is dead-lettered instead.
 */
export interface PoisonSuspectEvent {
  groupId: string;
  topic: string;
  partition: number;
  offset: bigint;
  messageId: string | undefined;
  crashes: number;
}

export interface RetryEvent {
  groupId: string;
  type: string;
  messageId: string;
  attempt: number;
  mode: 'blocking' | 'topic';
  delayMs: number;
  error: string;
}

export interface ProcessedEvent {
  groupId: string;
  type: string;
  messageId: string;
  /** The producer the envelope names ('' when the record carried none). */
  producerId: string;
  key: string;
  topic: string;
  partition: number;
  offset: bigint;
  outcome: 'processed' | 'duplicate';
  /** Why a duplicate was skipped: applied before (cache, inbox), or parked behind its open dead letter. */
  via?: 'cache' | 'inbox' | 'dead-letter';
}

/** Everything a consumer reports. 'error' is for infrastructure trouble it survives (it never dies of it). */
export interface ConsumerEvents {
  processed: [ProcessedEvent];
  retry: [RetryEvent];
  'dead-letter': [DeadLetterEvent];
  'copy-rejected': [CopyRejectedEvent];
  'message-id-conflict': [MessageIdConflictEvent];
  'poison-suspect': [PoisonSuspectEvent];
  'sequence-gap': [SequenceEvent];
  'sequence-duplicate': [SequenceEvent];
  /** A persistent gap (C9, `control`) open past `control.gapAlarmAfterMs`; once per gap. */
  'sequence-gap-alarm': [SequenceGap];
  /** A resend of a persistent gap was asked for on the control channel (`control.autoRepair`). */
  'sequence-repair-requested': [SequenceGap];
  assigned: [Array<{ topic: string; partition: number }>];
  revoked: [Array<{ topic: string; partition: number }>];
  committed: [Array<{ topic: string; partition: number; offset: bigint }>];
  error: [Error];
}

/** What middleware needs to report; the Consumer (an EventEmitter) satisfies it. */
export interface ConsumerReporter {
  emit<K extends keyof ConsumerEvents>(event: K, ...args: ConsumerEvents[K]): boolean;
}
