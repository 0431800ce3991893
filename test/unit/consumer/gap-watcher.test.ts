import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ControlMessage } from '../../../src/core/control-message.ts';
import { GapWatcher } from '../../../src/consumer/gap-watcher.ts';
import type { SequenceGap, SequenceStore, TailGap } from '../../../src/ports/sequence-store.ts';

/** An in-memory stand-in for the gap table: only what the watcher reads and changes. */
function fakeStore(gaps: SequenceGap[], applied = new Map<string, number>()) {
  const tails: TailGap[] = [];
  const store: SequenceStore = {
    recordRuns: async () => ({ found: [], healed: [] }),
    openGaps: async () => gaps.filter((g) => g.healedAt === null).map((g) => ({ ...g })),
    healDeadLettered: async () => [],
    markAlarmed: async (ids) => {
      const won = gaps.filter((g) => ids.includes(g.id) && g.alarmedAt === null);
      for (const g of won) g.alarmedAt = new Date();
      return won.map((g) => g.id);
    },
    markRepairRequested: async (id, _backoff, seen) => {
      const g = gaps.find((x) => x.id === id) as SequenceGap;
      if (g.repairRequests !== seen) return false;
      g.repairRequests++;
      g.repairDue = false;
      return true;
    },
    appliedSeqs: async () => applied,
    recordTailGap: async (_group, gap) => {
      tails.push(gap);
    },
    gapSummary: async () => [],
  };
  return { store, tails };
}

const gap = (over: Partial<SequenceGap> = {}): SequenceGap => ({
  id: '1',
  groupId: 'g',
  topic: 't',
  partition: 0,
  producerId: 'p',
  key: 'k',
  fromSeq: 4,
  toSeq: 5,
  tail: false,
  atOffset: null,
  detectedAt: new Date(),
  healedAt: null,
  alarmedAt: null,
  repairRequests: 0,
  repairRequestedAt: null,
  nextRepairAt: null,
  ageMs: 0,
  repairDue: true,
  ...over,
});
const settings = { gapAlarmAfterMs: 1_000, autoRepair: true, repairBackoffMs: 100, maxRepairRequests: 2 };

test('a gap younger than the threshold waits; past it, alarmed once and repaired until the bound', async () => {
  const gaps = [gap({ ageMs: 10 })];
  const { store } = fakeStore(gaps);
  const sent: ControlMessage[] = [];
  const alarms: SequenceGap[] = [];
  const w = new GapWatcher({
    store,
    groupId: 'g',
    topics: ['t'],
    settings,
    send: (m) => sent.push(m),
    finishedBelow: () => undefined,
    onAlarm: (g) => alarms.push(g),
  });
  assert.deepEqual(await w.tick(), { open: 1, alarmed: 0, requested: 0 });
  (gaps[0] as SequenceGap).ageMs = 2_000;
  assert.deepEqual(await w.tick(), { open: 1, alarmed: 1, requested: 1 });
  assert.deepEqual(await w.tick(), { open: 1, alarmed: 0, requested: 0 }, 'not due: the backoff runs');
  (gaps[0] as SequenceGap).repairDue = true;
  assert.deepEqual(await w.tick(), { open: 1, alarmed: 0, requested: 1 });
  (gaps[0] as SequenceGap).repairDue = true;
  assert.deepEqual(await w.tick(), { open: 1, alarmed: 0, requested: 0 }, 'maxRepairRequests reached');
  assert.equal(alarms.length, 1);
  assert.deepEqual(
    sent.map((m) => m.kind === 'resend-request' && [m.group, m.topic, m.producerId, m.key, m.fromSeq, m.toSeq]),
    [
      ['g', 't', 'p', 'k', 4, 5],
      ['g', 't', 'p', 'k', 4, 5],
    ],
  );
});

test('producer marks: checked once this process finished past their offset; other topics ignored; applied keys pass', async () => {
  const applied = new Map([
    ['t\u0000p\u0000done', 9],
    ['t\u0000p\u0000behind', 1],
  ]);
  const { store, tails } = fakeStore([], applied);
  let below: bigint | undefined;
  const w = new GapWatcher({ store, groupId: 'g', topics: ['t'], settings, finishedBelow: () => below });
  const mark = (key: string, seq: number, offset: string, topic = 't') => ({ topic, key, seq, partition: 0, offset });
  w.onProducerMarks({
    kind: 'producer-marks',
    producerId: 'p',
    at: new Date().toISOString(),
    marks: [mark('lost', 3, '20'), mark('done', 9, '21'), mark('behind', 4, '19'), mark('x', 1, '5', 'other')],
  });
  assert.equal(w.pendingMarks, 3);
  await w.tick();
  assert.deepEqual(tails, [], 'not owned (or nothing received yet): kept');
  below = 20n;
  await w.tick();
  assert.deepEqual(
    tails,
    [{ topic: 't', partition: 0, producerId: 'p', key: 'behind', fromSeq: 2, toSeq: 4, atOffset: 19n }],
    'offset 20 not finished yet',
  );
  below = 22n;
  await w.tick();
  // A key the group never applied: only the marked message is asked for, not its history from 1.
  assert.deepEqual(tails.slice(1), [{ topic: 't', partition: 0, producerId: 'p', key: 'lost', fromSeq: 3, toSeq: 3, atOffset: 20n }]);
  assert.equal(w.pendingMarks, 0);
});
