import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sequenceRuns } from '../../../src/consumer/sequence-marks.ts';
import type { Claim, InboxEntry } from '../../../src/ports/inbox-store.ts';

const entry = (key: string, seq: number, offset: number, producerId = 'p'): InboxEntry => ({
  groupId: 'g',
  idempotencyKey: `${key}-${seq}`,
  messageId: `${key}-${seq}`,
  topic: 't',
  partition: 0,
  offset: BigInt(offset),
  sequence: { producerId, key, seq },
});
const claimed: Claim = { kind: 'claimed' };

test('consecutive sequences of one key make one run; a jump starts another; keys and producers apart', () => {
  const entries = [entry('a', 1, 10), entry('b', 7, 11), entry('a', 2, 12), entry('a', 4, 13), entry('a', 3, 14, 'q')];
  const runs = sequenceRuns(
    entries,
    entries.map(() => claimed),
  );
  assert.deepEqual(
    runs.map((r) => [r.producerId, r.key, r.firstSeq, r.lastSeq, r.offset]),
    [
      ['p', 'a', 1, 2, 12n],
      ['p', 'b', 7, 7, 11n],
      ['p', 'a', 4, 4, 13n],
      ['q', 'a', 3, 3, 14n],
    ],
  );
});

test('duplicates count (applied before); a message-id conflict and an unsequenced message do not', () => {
  const unsequenced = { ...entry('c', 1, 3), sequence: undefined };
  const entries = [entry('a', 1, 1), entry('a', 2, 2), unsequenced];
  const runs = sequenceRuns(entries, [{ kind: 'duplicate' }, { kind: 'conflict', appliedDigest: 'x' }, claimed]);
  assert.deepEqual(
    runs.map((r) => [r.key, r.firstSeq, r.lastSeq]),
    [['a', 1, 1]],
  );
});
