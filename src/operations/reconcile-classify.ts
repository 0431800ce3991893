import type { MessageState } from '../ports/outbox-store.ts';

/** Pure reconciliation logic: given what each stage holds, where each message stands. No I/O here. */

export interface Copy {
  partition: number;
  offset: bigint;
  timestampMs: number;
}

/** One message the outbox committed in the window, and what the broker scan found of it. */
export interface ExpectedMessage {
  messageId: string;
  topic: string;
  state: MessageState;
  /** Copies on the main topic, in the order read. */
  copies: Copy[];
  /** Seen on one of the topic's retry topics. */
  retrying: boolean;
  /** The broker scan could not cover the row's recorded position: absence proves nothing. */
  unverified: boolean;
}

export interface GroupView {
  groupId: string;
  /** Topics the group consumes. */
  topics: Set<string>;
  /** Next offset to read per `topic\0partition`: the further of the broker commit and the stored offset. */
  committed: Map<string, bigint>;
  /** Message ids whose effect the group applied (inbox rows). */
  applied: Set<string>;
  /** Dead letters by message id: the most recent status. */
  deadLetters: Map<string, 'dead' | 'replayed' | 'discarded'>;
}

export interface GroupOutcome {
  groupId: string;
  topics: string[];
  expected: number;
  applied: number;
  deadLettered: string[];
  discarded: number;
  inFlight: number;
  missing: string[];
}

export const partKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * Where each broker-held (or lost) message stands for one group:
 * - applied: the group's inbox has it;
 * - dead-lettered / discarded by a person: the dead letter table has it;
 * - in flight: the group has not read past a copy yet, a retry copy is on its way, or a replayed dead letter
 *   has not come back yet;
 * - missing: the broker lost it (a sent row with no copy), or the group committed past every copy without an
 *   effect or a dead letter.
 * Messages not yet sent are the producer's business, not the group's, and are left out.
 */
export function classifyGroup(group: GroupView, messages: Iterable<ExpectedMessage>): GroupOutcome {
  const outcome: GroupOutcome = {
    groupId: group.groupId,
    topics: [...group.topics].sort(),
    expected: 0,
    applied: 0,
    deadLettered: [],
    discarded: 0,
    inFlight: 0,
    missing: [],
  };
  for (const m of messages) {
    if (!group.topics.has(m.topic)) continue;
    const onBroker = m.copies.length > 0;
    if (!onBroker && m.state !== 1) continue;
    outcome.expected++;
    if (group.applied.has(m.messageId)) {
      outcome.applied++;
      continue;
    }
    const dead = group.deadLetters.get(m.messageId);
    if (dead === 'dead') {
      outcome.deadLettered.push(m.messageId);
      continue;
    }
    if (dead === 'discarded') {
      outcome.discarded++;
      continue;
    }
    if (!onBroker) {
      if (m.unverified) outcome.inFlight++;
      else outcome.missing.push(m.messageId);
      continue;
    }
    const passed = m.copies.some((c) => c.offset < (group.committed.get(partKey(m.topic, c.partition)) ?? 0n));
    if (!passed || m.retrying || dead === 'replayed') outcome.inFlight++;
    else outcome.missing.push(m.messageId);
  }
  return outcome;
}

export type Verdict = 'clean' | 'in-flight' | 'attention' | 'gaps' | 'repaired';

/**
 * clean: every committed message is on the broker and applied by every group. in-flight: nothing lost,
 * some messages are still on their way. attention: nothing lost, but a person is needed (parked or stuck
 * rows, dead letters, a scan that could not finish). gaps: messages missing at some stage. repaired: gaps
 * were found and every missing message was re-published; run again to confirm the consumers applied them.
 */
export function verdictOf(r: {
  missingOnBroker: number;
  missingInGroups: number;
  repairedAll: boolean;
  needsPerson: number;
  inFlight: number;
}): Verdict {
  if (r.missingOnBroker + r.missingInGroups > 0) return r.repairedAll ? 'repaired' : 'gaps';
  if (r.needsPerson > 0) return 'attention';
  if (r.inFlight > 0) return 'in-flight';
  return 'clean';
}
