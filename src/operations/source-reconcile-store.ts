import type { ReconcileStore, ResendStore } from '../ports/operations-store.ts';
import type { SourceReconcile, UnbuiltStore } from '../ports/parked-source.ts';

/**
 * The store reconcile runs on for a state-column source: the source's rows stand where the outbox rows
 * stand (window, ack-vs-state repair, resend), and everything on the consuming side (inboxes, dead
 * letters, stored offsets) and the run record come from the schema's store, since consumers record a
 * source's messages by message id like any other.
 */
export function sourceReconcileStore(
  store: ReconcileStore & ResendStore,
  source: SourceReconcile,
): ReconcileStore & ResendStore & UnbuiltStore {
  return {
    unbuiltRows: (window, stuckAfterMs, limit) => source.unbuiltRows(window, stuckAfterMs, limit),
    outboxWindow: (window, topics, after, limit) => source.outboxWindow(window, topics, after, limit),
    markSentFromBroker: (found, actor) => source.markSentFromBroker(found, actor),
    resendRows: (selector, after, limit) => source.resendRows(selector, after, limit),
    recordResent: (sent, actor, reason) => source.recordResent(sent, actor, reason),
    inboxByMessageIds: (ids) => store.inboxByMessageIds(ids),
    deadLettersByMessageIds: (ids) => store.deadLettersByMessageIds(ids),
    storedOffsets: (groups) => store.storedOffsets(groups),
    startRun: (kind, window) => store.startRun(kind, window),
    finishRun: (id, verdict, report, held) => store.finishRun(id, verdict, report, held),
    heldIds: (ids) => store.heldIds(ids),
  };
}
