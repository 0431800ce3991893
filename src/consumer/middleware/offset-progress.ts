import type { InboxStore } from '../../ports/inbox-store.ts';
import type { Database } from '../../ports/sql-executor.ts';
import type { Stage } from '../chain.ts';
import type { Delivery } from '../delivery.ts';
import type { OffsetTracker } from '../offset-tracker.ts';

/**
 * Outermost stage, and the one place a finished record moves the consumer's position. A record is
 * finished when the chain inside returns (it has an outcome); a throw (abandoned, or not finishable now)
 * leaves it unfinished, so nothing is committed past it and it comes back.
 *
 * - Broker offsets: the record is marked finished in the tracker, which commits only up to the smallest
 *   unfinished offset of each partition (the commit itself runs on the consumer's timer, revoke and stop).
 * - Database offsets (`storeOffsets`): the next offset is written in the effect transaction, so it commits
 *   with the effect (or with a duplicate's nothing). Not past a message id conflict: that record is finished
 *   only once its dead letter is written. A record finished without an effect transaction (dead letter,
 *   retry copy, cache duplicate, a duplicate the poison guard found) gets it written here afterwards, best
 *   effort: a position left behind only causes redelivery, which the inbox absorbs.
 */
export function offsetProgressStage(deps: {
  tracker: OffsetTracker;
  storeOffsets: boolean;
  inbox: InboxStore;
  db: Database;
  /** Called after each finished record (the consumer resumes a paused subscription here). */
  onFinished: () => void;
  report: (error: Error) => void;
}): Stage<Delivery> {
  return async (d, next) => {
    const { topic, partition, offset } = d.record;
    if (deps.storeOffsets) {
      d.withEffect = async (tx, claim) => {
        if (claim.kind !== 'conflict') await deps.inbox.storeOffset(tx, d.groupId, topic, partition, offset + 1n);
      };
    }
    await next(d);
    if (deps.storeOffsets && d.outcome?.kind !== 'processed') {
      await deps.inbox
        .storeOffset(deps.db, d.groupId, topic, partition, offset + 1n)
        .catch((error: unknown) => deps.report(error as Error));
    }
    deps.tracker.finish(topic, partition, offset, d.epoch);
    deps.onFinished();
  };
}
