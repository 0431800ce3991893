import type { InboxCache } from '../../ports/inbox-cache.ts';
import type { Stage } from '../chain.ts';
import { AbandonedError, type RoutedDelivery } from '../delivery.ts';

/**
 * The optional fast path in front of the inbox (C4). A key the cache remembers is skipped without touching
 * the database; otherwise a short lock keeps two concurrent copies of one message (two consumers during a
 * rebalance) from both running the handler at once. The cache is an optimisation only: when it is down,
 * flushed or wrong, the inbox row in the effect transaction still decides, so only speed changes.
 *
 * Under a message id the cache remembers the id together with the content digest: a different message
 * under the same id misses the cache and reaches the inbox, which dead-letters it as a conflict instead of
 * the cache skipping it as a duplicate. The lock stays on the id alone, so it still serialises all copies.
 */
export function dedupCacheStage(cache: InboxCache, options: { lockTtlMs: number; lockWaitMs: number }): Stage<RoutedDelivery> {
  return async (d, next) => {
    const { idempotencyKey: key, contentDigest } = d.routed;
    const remembered = contentDigest === undefined ? key : `${key}#${contentDigest}`;
    if ((await cache.has(d.groupId, remembered)) === true) {
      d.outcome = { kind: 'duplicate', via: 'cache' };
      return;
    }
    const deadline = Date.now() + options.lockWaitMs;
    let token: string | null | undefined;
    for (;;) {
      token = await cache.lock(d.groupId, key, options.lockTtlMs);
      if (token !== null) break;
      // Another copy is being handled right now: wait for it, then it is most likely a duplicate.
      if (Date.now() >= deadline) break;
      if (!(await d.lane.sleep(50, d.signal))) throw new AbandonedError();
      if ((await cache.has(d.groupId, remembered)) === true) {
        d.outcome = { kind: 'duplicate', via: 'cache' };
        return;
      }
    }
    try {
      await next(d);
    } finally {
      if (token) await cache.unlock(d.groupId, key, token);
    }
    const outcome = d.outcome;
    if (outcome?.kind === 'processed' || (outcome?.kind === 'duplicate' && outcome.via === 'inbox')) await cache.add(d.groupId, remembered);
  };
}
