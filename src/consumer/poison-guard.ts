import { ZerolossError } from '../core/errors.ts';
import type { InboxStore, StartLog, StartRef } from '../ports/inbox-store.ts';
import type { ConsumerReporter } from './consumer-events.ts';
import type { ConsumerMetrics } from './consumer-metrics.ts';
import type { Next, Stage } from './chain.ts';
import { AbandonedError, type RoutedDelivery } from './delivery.ts';
import { NotYetError } from './guards/guard-errors.ts';
import { OutOfTurnError } from './lane-ticket.ts';
import { attemptAllowed } from './retry-policy.ts';
import { isStoreUnavailable, type StoreRetryOptions, untilAvailable } from './store-retry.ts';

/**
 * Detects a message that kills the process whenever it is handled (poison, C7) by counting handler starts
 * durably per delivered record. It wraps each attempt, not the whole delivery: a record is marked while
 * its attempt runs, and the mark is taken back when the attempt ends without a crash (a failure, an
 * abandonment). So a record that only waited when its process died (in a retry delay, an outage backoff,
 * or queued behind its key) has no mark and is not a suspect; a record whose mark survived was running.
 *
 * A suspect's attempts run alone (no other handler of this process running), and only then is its start
 * counted: a healthy record that merely shared a process with the poison is never blamed for the crash.
 * Its first rerun is immediate and its waits between attempts hold nothing, so a recovering consumer pays
 * a suspect's retry delays in that suspect's key only, as for any other record. Once a suspect has been
 * started `maxStarts` times without finishing, it is dead-lettered without running again, and the records
 * behind it keep flowing. A record is finished when its offset is committed (its marks are then deleted).
 */
export function poisonGuardStage(
  starts: StartLog,
  inbox: InboxStore,
  options: { maxStarts: number; retry: StoreRetryOptions; reporter: ConsumerReporter; metrics: ConsumerMetrics },
): Stage<RoutedDelivery> {
  // Deliveries whose mark could not be taken back after a failed attempt (the store was away): the mark is
  // still theirs, so their next attempt must not read it as a crash.
  const stillMarked = new WeakMap<RoutedDelivery, 'first' | 'suspect'>();
  // Deliveries this process has started before: a redelivery after a crash is a new delivery.
  const seen = new WeakSet<RoutedDelivery>();

  const attempt = async (d: RoutedDelivery, ref: StartRef, kind: 'first' | 'suspect', next: Next<RoutedDelivery>) => {
    let ended: Promise<void> | undefined;
    // Not running any more, and not crashed: whatever the record waits for next is not held against it.
    // A failure of its own is kept with the mark, so a redelivery after a crash goes on from the next attempt.
    // The stages inside may end the attempt before its failure comes back here (d.endAttempt): the
    // effect batcher takes back the marks of a failed shared transaction's members together, before it
    // tells any of them, and a member may then wait a while for a slot before its failure reaches here.
    const end = (error: unknown): Promise<void> => {
      ended ??= starts.release({ ...ref, failedAttempt: charged(error) ? d.attempt : undefined }).catch(() => {
        stillMarked.set(d, kind);
      });
      return ended;
    };
    d.endAttempt = end;
    try {
      await next(d);
    } catch (error) {
      await end(error);
      throw error;
    } finally {
      d.endAttempt = undefined;
    }
  };

  return async (d, next) => {
    const ref: StartRef = {
      groupId: d.groupId,
      topic: d.record.topic,
      partition: d.record.partition,
      offset: d.record.offset,
      messageId: d.decoded.envelope.id,
    };
    const held = stillMarked.get(d);
    stillMarked.delete(d);
    if (held === 'first') return attempt(d, ref, 'first', next);
    if (held === undefined) {
      const first = await untilAvailable(d, 'recording a handler start', options.retry, () => starts.firstStart(ref));
      if (first) {
        // Redelivered after its consumer died while it waited for a retry: its failed attempts count (the
        // policy's budget spans the crash), and it runs at once rather than from its first attempt again.
        // Only on a delivery's first pass here: later passes in this process (a retry, a hold's re-check)
        // follow the retry stage's own count.
        const failed = typeof first === 'object' ? first.failed : 0;
        if (!seen.has(d) && failed >= d.attempt) {
          d.attempt = failed + 1;
          d.attemptsMade = Math.max(d.attemptsMade, failed);
        }
        seen.add(d);
        // Its last allowed attempt failed before the crash (and its dead letter may not have committed): it
        // is not run beyond its policy; the retry stage gives up on it and the dead-letter stage records it.
        if (!attemptAllowed(d.routed.route.retry, d.attempt)) return attempt(d, ref, 'first', () => Promise.reject(exhausted(failed)));
        return attempt(d, ref, 'first', next);
      }
      // A redelivery whose effect did commit (the crash came after it) needs no isolation. Its own effect:
      // another message under the same id is no duplicate of it, and goes on to be a conflict dead letter.
      const applied = await untilAvailable(d, 'checking the inbox', options.retry, () =>
        inbox.contains(d.groupId, d.routed.idempotencyKey, d.routed.contentDigest),
      );
      if (applied) {
        d.outcome = { kind: 'duplicate', via: 'inbox' };
        return;
      }
    }
    // Until it runs alone, the key's next messages must not join or queue behind it holding slots.
    d.lane.ticket.runAlone();
    d.lane.ticket.set('waiting');
    await d.lane.exclusive(async () => {
      if (d.signal.aborted) throw new AbandonedError();
      d.lane.ticket.set('active');
      if (held === undefined) {
        const { started, failed } = await untilAvailable(d, 'recording a handler start', options.retry, () => starts.countStart(ref));
        options.metrics.poisonSuspects.inc({ group: d.groupId });
        options.reporter.emit('poison-suspect', {
          groupId: d.groupId,
          topic: ref.topic,
          partition: ref.partition,
          offset: ref.offset,
          messageId: ref.messageId,
          crashes: started - 1,
        });
        if (started > options.maxStarts) {
          throw new ZerolossError(
            'ZL_POISON_MESSAGE',
            `started ${started - 1} times without finishing (limit ${options.maxStarts}): it crashes or hangs the consumer`,
            { details: { started: started - 1 } },
          );
        }
        // Its attempts that failed before the crash count, as for a first start after one: it goes on from
        // the attempt that crashed, never beyond its policy.
        if (!seen.has(d) && failed >= d.attempt) {
          d.attempt = failed + 1;
          d.attemptsMade = Math.max(d.attemptsMade, failed);
        }
        seen.add(d);
        if (!attemptAllowed(d.routed.route.retry, d.attempt)) {
          await attempt(d, ref, 'suspect', () => Promise.reject(exhausted(failed)));
          return;
        }
      }
      await attempt(d, ref, 'suspect', next);
    });
  };
}

/**
 * Whether a failed attempt counts against the record: not when it never ran its handler, was called off, or
 * was refused as early (a hold's re-check is not an attempt).
 */
function charged(error: unknown): boolean {
  return !(error instanceof AbandonedError || error instanceof OutOfTurnError || error instanceof NotYetError || isStoreUnavailable(error));
}

function exhausted(failed: number): ZerolossError {
  return new ZerolossError('ZL_RETRIES_EXHAUSTED', `its ${failed} allowed attempts failed before the consumer restarted`, {
    retryable: true,
    details: { attempts: failed },
  });
}
