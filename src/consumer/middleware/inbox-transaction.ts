import { HEADER } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import type { Claim } from '../../ports/inbox-store.ts';
import type { Stage } from '../chain.ts';
import type { ConsumerMetrics } from '../consumer-metrics.ts';
import { REPLAY_HEADER } from '../dead-letters.ts';
import { deadLetterKey } from './dead-letter.ts';
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
 * dead-lettered with both digests, never skipped in silence. A message whose key has an open dead letter
 * (a resent copy, a redelivery) is parked there: nothing runs, and only a replay (`zl-replay-of`) applies it.
 *
 * The transaction may be shared with other messages (EffectBatcher), this key's next ones included: it
 * commits or rolls back as one, and a member of a rolled-back batch runs again alone. A message joins a
 * transaction only behind its key's previous message or once that one is applied (see lane-ticket.ts).
 */
export function inboxTransactionStage(
  batcher: EffectBatcher,
  metrics: ConsumerMetrics,
  /** How long the inbox remembers an applied message (`inbox.retentionMs`). */
  inboxMemoryMs: number,
): Stage<RoutedDelivery> {
  return async (d) => {
    if (d.signal.aborted) throw new AbandonedError();
    const { route, message, idempotencyKey: key, contentDigest } = d.routed;
    d.attemptsMade++;
    const ticket = d.lane.ticket;
    const replayOf = d.record.headers[REPLAY_HEADER];
    const work: EffectWork = {
      ticket,
      end: d.endAttempt,
      entry: {
        groupId: d.groupId,
        idempotencyKey: key,
        messageId: message.id,
        topic: d.origin.topic,
        partition: d.origin.partition,
        offset: d.origin.offset,
        contentDigest,
        sequence:
          message.seq > 0 && message.producerId !== '' ? { producerId: message.producerId, key: message.key, seq: message.seq } : undefined,
        deadLetterKey: replayOf === undefined ? deadLetterKey(key, contentDigest) : null,
      },
      apply: async (tx, found) => {
        if (found.kind === 'claimed') {
          if (replayOf === undefined) {
            refuseBeyondInboxMemory(message.id, d.record.headers[HEADER.builtAt] ?? message.createdAt, inboxMemoryMs);
          }
          await inDeliverySpan(d, () =>
            route.handler(message, { tx, attempt: d.attempt, groupId: d.groupId, idempotencyKey: key, signal: d.signal }),
          );
        }
        await d.withEffect?.(tx, found);
      },
    };
    let claim: Claim;
    try {
      const { effect } = await submitInTurn(d, () => {
        // The effect transaction, not the wait for the key's turn ahead of it.
        const stopTimer = metrics.handlerSeconds.startTimer({ group: d.groupId, type: route.type });
        return batcher.run(work).finally(stopTimer);
      });
      // Awaited here, the same way by every member, however long each waited for its turn: members of one
      // transaction then go on in the order the batcher settles them, their key's order.
      claim = await effect;
    } catch (error) {
      if (error instanceof OutOfTurnError) {
        // Nothing of it ran: not an attempt. It waits again from here on (unmarked, in the key order stage),
        // and in this very turn, so the key's next messages following it leave their attempts with it and
        // their start marks are taken back together with its own, not one round trip after the other.
        d.attemptsMade--;
        ticket.set('waiting');
      }
      throw error;
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
    d.outcome = { kind: 'duplicate', via: claim.kind === 'dead-lettered' ? 'dead-letter' : 'inbox' };
  };
}

/**
 * Hands the effect to the batcher (`submit`) once it may go, and gives back its outcome, to be awaited: its key's previous message is applied
 * (settled), or its effect went to the batcher in this turn (this one then follows it into its flush and
 * transaction). Waits, holding no slot, while that one is itself starting ('active', 'ready'). It goes in
 * synchronously at that one's change of state, not when this task next gets a slot: a slot can take longer
 * than the turn in which the batcher collects a flush, and this one, marked, would then miss it.
 *
 * Before going first (nothing ahead, or nothing ahead still to come), it waits for the followers still
 * taking their start marks (one round trip): they started behind it to share its transaction, and left
 * behind, marked, they could only wait for it to end.
 *
 * If that previous message's transaction already runs (a flush this one missed), or it went back to
 * waiting (its attempt failed, it was out of turn itself, or it is a suspect about to run alone), this
 * attempt is out of turn: it cannot run before that one settles, and it must not wait for that holding a
 * start mark, since a crash meanwhile (a long or hanging handler ahead of it) would make it a poison suspect
 * though it never ran.
 */
function submitInTurn(d: RoutedDelivery, submit: () => Promise<Claim>): Promise<{ effect: Promise<Claim> }> {
  const ticket = d.lane.ticket;
  ticket.set('ready');
  let gone = false;
  let submitted: Promise<Claim> | undefined;
  let outOfTurn = false;
  let inTurn: () => void = () => {};
  let notInTurn: (error: Error) => void = () => {};
  // Its mark goes back at once, not once the rejection has come through a slot taken again (see d.endAttempt).
  const refuse = (error: Error): void => {
    void d.endAttempt?.(error);
    notInTurn(error);
  };
  const decide = (): void => {
    if (gone) return;
    if (d.signal.aborted) {
      refuse(new AbandonedError());
      return;
    }
    const previous = ticket.previous;
    if (previous && (previous.failed || previous.state === 'waiting' || previous.state === 'running')) {
      outOfTurn = true;
      refuse(new OutOfTurnError());
      return;
    }
    if (previous && previous.state !== 'submitted') {
      previous.onChange(decide);
      return;
    }
    // A suspect runs alone: nothing follows it, and it holds every slot a follower would need to go on.
    const follower = previous || ticket.alone ? undefined : ticket.followerStarting;
    if (follower) {
      follower.onChange(decide);
      return;
    }
    submitted = submit();
    // Awaited below; this keeps a rejection meanwhile from being reported as unhandled.
    submitted.catch(() => {});
    inTurn();
  };
  decide();
  // Decided at once (the common case): no wait, so the slot is kept.
  if (submitted) return Promise.resolve({ effect: submitted });
  if (outOfTurn) return Promise.reject(new OutOfTurnError());
  const turn = new Promise<void>((resolve, reject) => {
    inTurn = resolve;
    notInTurn = reject;
  });
  return d.lane.wait(turn, d.signal).then(
    (waited) => {
      if (!waited && submitted === undefined) {
        gone = true;
        throw new AbandonedError();
      }
      // Once submitted, the effect's outcome is awaited even when the delivery was abandoned meanwhile: it
      // may commit, and what committed must be reported as such.
      return { effect: submitted as Promise<Claim> };
    },
    (error: unknown) => {
      gone = true;
      throw error;
    },
  );
}

/**
 * A message created longer ago than the inbox remembers, and not in it: it may have been applied and
 * forgotten (the inbox deletes rows `inbox.retentionMs` after applying them), while a log may keep it much
 * longer (the table log until its retention runs, a topic with long retention) and hand it back: a group
 * deleted and started over, a consumer down longer than that before it committed. Applied again, its effect
 * happened twice. Refused for good instead (dead-lettered): a person who knows it was not applied replays it.
 */
function refuseBeyondInboxMemory(messageId: string, createdAt: string, inboxMemoryMs: number): void {
  const created = Date.parse(createdAt);
  if (Number.isNaN(created) || Date.now() - created <= inboxMemoryMs) return;
  const days = ((Date.now() - created) / 86_400_000).toFixed(1);
  throw new ZerolossError(
    'ZL_BEYOND_INBOX_MEMORY',
    `message ${messageId} was created ${days} days ago, before what the inbox remembers (inbox.retentionMs ${inboxMemoryMs} ms), ` +
      'and is not in it: whether it was applied cannot be known, so it is not applied. Replay it if it was not: npx zeroloss dlq replay <id>',
    { retryable: false, details: { messageId, createdAt, inboxMemoryMs } },
  );
}
