import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ExpectedMessage, type GroupView, classifyGroup, partKey, verdictOf } from '../../../src/operations/reconcile-classify.ts';

const msg = (id: string, over: Partial<ExpectedMessage> = {}): ExpectedMessage => ({
  messageId: id,
  topic: 't',
  state: 1,
  copies: [{ partition: 0, offset: BigInt(id.replace(/\D/g, '') || '0'), timestampMs: 0 }],
  retrying: false,
  unverified: false,
  ...over,
});

const group = (over: Partial<GroupView> = {}): GroupView => ({
  groupId: 'g',
  topics: new Set(['t']),
  committed: new Map([[partKey('t', 0), 10n]]),
  applied: new Set(),
  deadLetters: new Map(),
  ...over,
});

describe('reconcile classification', () => {
  test('applied, dead-lettered, discarded, in flight, missing', () => {
    const messages = [
      msg('m1'), // applied
      msg('m2'), // dead
      msg('m3'), // discarded dead letter
      msg('m4'), // passed without effect: missing
      msg('m12'), // beyond the committed offset: in flight
      msg('m5', { retrying: true }), // on a retry topic: in flight
      msg('m6', { copies: [] }), // the broker lost it: missing
      msg('m7', { copies: [], unverified: true }), // the scan could not check: not called missing
      msg('m8', { copies: [], state: 0 }), // not sent yet: not the group's business
      msg('m9', { topic: 'other' }), // another topic
      msg('m2b'), // dead letter replayed, not back yet: in flight
    ];
    const g = group({
      applied: new Set(['m1']),
      deadLetters: new Map([
        ['m2', 'dead'],
        ['m3', 'discarded'],
        ['m2b', 'replayed'],
      ]),
    });
    const out = classifyGroup(g, messages);
    assert.equal(out.expected, 9);
    assert.equal(out.applied, 1);
    assert.deepEqual(out.deadLettered, ['m2']);
    assert.equal(out.discarded, 1);
    assert.equal(out.inFlight, 4);
    assert.deepEqual(out.missing, ['m4', 'm6']);
  });

  test('a copy on another partition below the commit counts as passed', () => {
    const m = msg('m20', {
      copies: [
        { partition: 0, offset: 20n, timestampMs: 0 },
        { partition: 1, offset: 3n, timestampMs: 0 },
      ],
    });
    const g = group({ committed: new Map([[partKey('t', 1), 5n]]) });
    assert.deepEqual(classifyGroup(g, [m]).missing, ['m20']);
  });

  test('verdicts', () => {
    const base = { missingOnBroker: 0, missingInGroups: 0, repairedAll: false, needsPerson: 0, inFlight: 0 };
    assert.equal(verdictOf(base), 'clean');
    assert.equal(verdictOf({ ...base, inFlight: 3 }), 'in-flight');
    assert.equal(verdictOf({ ...base, inFlight: 3, needsPerson: 1 }), 'attention');
    assert.equal(verdictOf({ ...base, missingInGroups: 1, needsPerson: 1 }), 'gaps');
    assert.equal(verdictOf({ ...base, missingOnBroker: 2, repairedAll: true }), 'repaired');
  });
});
