import { ZerolossError } from '../../core/errors.ts';
import type { Claim } from '../../ports/inbox-store.ts';
import type { Stage } from '../chain.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import { AbandonedError, type RoutedDelivery } from '../delivery.ts';
import type { EffectBatcher, EffectWork } from '../effect-batcher.ts';
import { OutOfTurnError } from '../lane-ticket.ts';
import { inDeliverySpan } from './tracing.ts';

/**
 * The last stage, one per attempt: a transaction zeroloss opens, the inbox row first, then the handler's
 * writes through `ctx.tx`, then what the offset stage asked to commit with the effect, then commit (C4).
 * The inbox insert comes first so a concurrent copy blocks on the unique key until this transaction ends,
 * and a duplicate commits nothing: the handler does not run at all.
 *
 * A different message under a message id already applied (same id, other content digest) is not a
 * duplicate: nothing is written, and it is thrown on as ZL_MESSAGE_ID_CONFLICT (permanent) to be
 * dead-lettered with both digests, never skipped in silence.
 *
 * The transaction may be shared with other messages (EffectBatcher), this key's next ones included: it
 * commits or rolls back as one, and a member of a rolled-back batch runs again alone. A message joins a
 * transaction only behind its key's previous message or once that one is applied (see lane-ticket.ts).
 */
export function inboxTransactionStage(batcher: EffectBatcher, metrics: ConsumerMetrics): Stage<RoutedDelivery> {
  return async (d) => {
    if (d.signal.aborted) throw new AbandonedError();
    const { route, message, idempotencyKey: key, contentDigest } = d.routed;
    d.attemptsMade++;
    const stopTimer = metrics.handlerSeconds.startTimer({ group: d.groupId, type: route.type });
    const ticket = d.lane.ticket;
    const work: EffectWork = {
      ticket,
      entry: {
        groupId: d.groupId,
        idempotencyKey: key,
        messageId: message.id,
        topic: d.origin.topic,
        partition: d.origin.partition,
        offset: d.origin.offset,
        contentDigest,
      },
      apply: async (tx, found) => {
        if (found.kind === 'claimed') {
          await inDeliverySpan(d, () =>
            route.handler(message, { tx, attempt: d.attempt, groupId: d.groupId, idempotencyKey: key, signal: d.signal }),
          );
        }
        await d.withEffect?.(tx, found);
      },
    };
    let claim: Claim | undefined;
    try {
      while (claim === undefined) {
        await untilJoinable(d).catch((error: unknown) => {
          // Out of turn before anything ran: not an attempt.
          if (error instanceof OutOfTurnError) d.attemptsMade--;
          throw error;
        });
        ticket.set('submitted');
        claim = await batcher.run(work).catch((error: unknown) => {
          if (!(error instanceof OutOfTurnError)) throw error;
          // Nothing of it ran: wait for the key's previous message and hand the effect over again.
          ticket.set('active');
          return undefined;
        });
      }
    } finally {
      stopTimer();
    }
    if (claim.kind === 'claimed') {
      d.outcome = { kind: 'processed', committedAt: Date.now() };
      return;
    }
    // The handler did not run, so this attempt was not one.
    d.attemptsMade--;
    if (claim.kind === 'conflict') {
      throw new ZerolossError(
        'ZL_MESSAGE_ID_CONFLICT',
        `message id ${message.id} was applied before with other content (digest ${claim.appliedDigest}); this message's digest is ${contentDigest}`,
        { retryable: false, details: { messageId: message.id, digest: contentDigest, appliedDigest: claim.appliedDigest } },
      );
    }
    d.outcome = { kind: 'duplicate', via: 'inbox' };
  };
}

/**
 * Waits, holding no slot, until the message's effect may go to the batcher: its key's previous message is
 * applied (settled), or queued in the batcher's coming flush (this one then follows it into its
 * transaction). While that one's transaction runs, this one waits here; if that one went back to waiting
 * (its attempt failed, or it is a suspect about to run alone), this attempt is out of turn.
 */
async function untilJoinable(d: RoutedDelivery): Promise<void> {
  for (;;) {
    const previous = d.lane.ticket.previous;
    if (previous === undefined) return;
    if (previous.state === 'waiting' || previous.failed) throw new OutOfTurnError();
    if (previous.state === 'submitted') return;
    if (!(await d.lane.wait(previous.changed(), d.signal))) throw new AbandonedError();
  }
}
