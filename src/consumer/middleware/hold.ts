import type { Stage } from '../chain.ts';
import { AbandonedError, type RoutedDelivery } from '../delivery.ts';
import { HoldExpiredError, NotYetError } from '../guards/guard-errors.ts';

/**
 * The delayed compare-and-fix path: a message whose handler says its predecessor has not landed yet
 * (NotYetError, thrown in the effect transaction, which therefore rolled back) is held and checked again.
 *
 * Runs between the retry stage and the attempt, and calls the attempt again (it is added with `perAttempt`)
 * after each refusal, so:
 * - a refusal is not an attempt: the retry stage never sees it, so the type's retry policy is not charged,
 *   and the handler-run count the dead letter reports is put back (an expired hold counts as one attempt);
 * - the message stays in its key's lane: its failed attempt left its lane ticket waiting and failed, so the
 *   key's later messages wait behind it (key order stage) while other keys flow;
 * - the wait holds no concurrency slot (`lane.sleep`) and no poison mark (the guard took it back when the
 *   attempt failed), so a crash while held does not make it a suspect;
 * - the hold is bounded: `hold.maxMs` after the first refusal the message is dead-lettered as
 *   ZL_HOLD_EXPIRED with the handler's reason. The clock is per delivery: a redelivery after a restart or
 *   a rebalance starts a new hold.
 */
export function holdStage(): Stage<RoutedDelivery> {
  // Per delivery, across this stage's runs (a retry in between runs it again): when the hold began, checks made.
  const holds = new WeakMap<RoutedDelivery, { since: number; checks: number }>();
  return async (d, next) => {
    const policy = d.routed.route.hold;
    let delay = policy.delayMs;
    for (;;) {
      const runs = d.attemptsMade;
      try {
        await next(d);
        return;
      } catch (thrown) {
        if (!(thrown instanceof NotYetError)) throw thrown;
        const now = Date.now();
        const hold = holds.get(d) ?? { since: now, checks: 0 };
        holds.set(d, hold);
        hold.checks++;
        const left = hold.since + policy.maxMs - now;
        // The last check is the one attempt a held message is charged: its dead letter says 1 attempt.
        if (left <= 0) throw new HoldExpiredError(now - hold.since, hold.checks, thrown);
        d.attemptsMade = runs;
        if (!(await d.lane.sleep(Math.min(delay, left), d.signal))) throw new AbandonedError();
        delay = Math.min(policy.maxDelayMs, delay * 2);
      }
    }
  };
}
