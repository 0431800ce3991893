import type { ConsumerEvents } from '../consumer/consumer-events.ts';
import type { SequenceEvent } from '../consumer/gap-detector.ts';
import type { AlarmStore } from '../ports/operations-store.ts';

/** The part of a Consumer this needs: its group and its events. */
export interface AlarmSource {
  readonly config: { groupId: string };
  on<K extends keyof ConsumerEvents>(event: K, listener: (...args: ConsumerEvents[K]) => void): unknown;
  off<K extends keyof ConsumerEvents>(event: K, listener: (...args: ConsumerEvents[K]) => void): unknown;
}

/**
 * Records a consumer's sequence gaps and duplicates (C9) in the sequence_alarm table, so `zeroloss status`
 * and the metrics endpoint show them across processes. The gap detector lives in memory per consumer; this
 * is the durable trail. A failed write is reported to `onError` and never disturbs the consumer. Returns a
 * function that stops recording.
 */
export function recordSequenceAlarms(consumer: AlarmSource, store: AlarmStore, onError: (error: Error) => void = () => {}): () => void {
  const write = (e: SequenceEvent) => {
    store
      .recordAlarm(consumer.config.groupId, {
        kind: e.kind,
        topic: e.topic,
        partition: e.partition,
        producerId: e.producerId,
        key: e.key,
        expected: e.expected,
        received: e.received,
        missing: e.missing,
      })
      .catch((error: unknown) => onError(error as Error));
  };
  consumer.on('sequence-gap', write);
  consumer.on('sequence-duplicate', write);
  return () => {
    consumer.off('sequence-gap', write);
    consumer.off('sequence-duplicate', write);
  };
}
