import type { Claim, InboxEntry } from '../ports/inbox-store.ts';
import type { SequenceRun, SequenceStore } from '../ports/sequence-store.ts';
import type { BatchInbox } from './effect-batcher.ts';

/**
 * The inbox of the effect batcher, with persistent sequence marks (C9): right after the inbox rows, in the
 * same transaction, one statement moves the group's marks up to the sequences of this transaction's
 * messages and records or heals gaps. So a mark commits if and only if the effects it stands for commit,
 * and a restart or a rebalance resumes from what was applied. Duplicates count (applied before); a
 * message-id conflict or a message parked behind its dead letter does not (its effect was not applied).
 */
export function withSequenceMarks(inbox: BatchInbox, store: SequenceStore): BatchInbox {
  return {
    async claimMany(tx, entries) {
      const claims = await inbox.claimMany(tx, entries);
      const runs = sequenceRuns(entries, claims);
      if (runs.length > 0) await store.recordRuns(tx, (entries[0] as InboxEntry).groupId, runs);
      return claims;
    },
    unclaimMany: (tx, entries) => inbox.unclaimMany(tx, entries),
  };
}

/** Consecutive sequences of one (topic, producer, key), in the order of `entries` (their key order). */
export function sequenceRuns(entries: InboxEntry[], claims: Claim[]): SequenceRun[] {
  const runs: SequenceRun[] = [];
  const lastOf = new Map<string, SequenceRun>();
  entries.forEach((entry, i) => {
    const s = entry.sequence;
    if (!s || claims[i]?.kind === 'conflict' || claims[i]?.kind === 'dead-lettered') return;
    const id = `${entry.topic}\u0000${s.producerId}\u0000${s.key}`;
    const last = lastOf.get(id);
    if (last && last.lastSeq + 1 === s.seq) {
      last.lastSeq = s.seq;
      last.offset = entry.offset;
      return;
    }
    const run = {
      topic: entry.topic,
      partition: entry.partition,
      producerId: s.producerId,
      key: s.key,
      firstSeq: s.seq,
      lastSeq: s.seq,
      offset: entry.offset,
    };
    runs.push(run);
    lastOf.set(id, run);
  });
  return runs;
}
