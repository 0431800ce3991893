import type { InboxStore } from '../../ports/inbox-store.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import { AbandonedError, type Delivery } from '../delivery.ts';
import type { EffectBatcher } from '../effect-batcher.ts';
import type { ConsumedMessage, RegisteredHandler } from '../handler-registry.ts';

/**
 * One attempt: a transaction zeroloss opens, the inbox row first, then the handler's writes through
 * `ctx.tx`, then commit (C4). The inbox insert comes first so a concurrent copy blocks on the unique key
 * until this transaction ends, and a duplicate commits nothing: the handler does not run at all.
 *
 * The transaction may be shared with other keys' messages (EffectBatcher): it commits or rolls back as
 * one, and a member of a rolled-back batch runs again alone.
 */
export function inboxTransaction(
  batcher: EffectBatcher,
  inbox: InboxStore,
  metrics: ConsumerMetrics,
  options: { storeOffsets: boolean },
): (d: Delivery) => Promise<void> {
  return async (d) => {
    if (d.signal.aborted) throw new AbandonedError();
    const route = d.route as RegisteredHandler;
    const message = d.message as ConsumedMessage;
    const key = d.idempotencyKey as string;
    d.attemptsMade++;
    const stopTimer = metrics.handlerSeconds.startTimer({ group: d.groupId, type: route.type });
    let applied: boolean;
    try {
      applied = await batcher.run({
        entry: {
          groupId: d.groupId,
          idempotencyKey: key,
          messageId: message.id,
          topic: d.origin.topic,
          partition: d.origin.partition,
          offset: d.origin.offset,
        },
        apply: async (tx, claimed) => {
          if (claimed) {
            await route.handler(message, { tx, attempt: d.attempt, groupId: d.groupId, idempotencyKey: key, signal: d.signal });
          }
          // P10: the position moves with the effect, in the same commit.
          if (options.storeOffsets) await inbox.storeOffset(tx, d.groupId, d.record.topic, d.record.partition, d.record.offset + 1n);
        },
      });
    } finally {
      stopTimer();
    }
    if (applied) {
      d.outcome = 'processed';
      d.committedAt = Date.now();
    } else {
      // The handler did not run, so this attempt was not one.
      d.attemptsMade--;
      d.outcome = 'duplicate';
      d.duplicateVia = 'inbox';
    }
  };
}
