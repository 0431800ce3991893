import type { SequenceEvent } from './gap-detector.ts';

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
  key: string;
  topic: string;
  partition: number;
  offset: bigint;
  outcome: 'processed' | 'duplicate';
  via?: 'cache' | 'inbox';
}

/** Everything a consumer reports. 'error' is for infrastructure trouble it survives (it never dies of it). */
export interface ConsumerEvents {
  processed: [ProcessedEvent];
  retry: [RetryEvent];
  'dead-letter': [DeadLetterEvent];
  'sequence-gap': [SequenceEvent];
  'sequence-duplicate': [SequenceEvent];
  assigned: [Array<{ topic: string; partition: number }>];
  revoked: [Array<{ topic: string; partition: number }>];
  committed: [Array<{ topic: string; partition: number; offset: bigint }>];
  error: [Error];
}

/** What middleware needs to report; the Consumer (an EventEmitter) satisfies it. */
export interface ConsumerReporter {
  emit<K extends keyof ConsumerEvents>(event: K, ...args: ConsumerEvents[K]): boolean;
}
