import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignPartitions, type GroupMember } from '../../src/adapters/shared/assign-partitions.ts';

const members = (n: number, topics = ['a', 'b']): GroupMember[] => Array.from({ length: n }, (_, i) => ({ memberId: `m${i}`, topics }));

test('assignPartitions gives every partition to exactly one member, within one of an even share', () => {
  for (const count of [1, 2, 3, 5, 8]) {
    const result = assignPartitions(members(count), [
      { topic: 'a', partitions: 6 },
      { topic: 'b', partitions: 5 },
    ]);
    assert.equal(result.length, 11);
    assert.equal(new Set(result.map((r) => `${r.topic}/${r.partition}`)).size, 11);
    const load = new Map<string, number>();
    for (const r of result) load.set(r.memberId, (load.get(r.memberId) ?? 0) + 1);
    const loads = [...load.values()];
    assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `uneven spread over ${count}: ${loads}`);
    assert.equal(load.size, Math.min(count, 11));
  }
});

test('assignPartitions does not depend on the order of its inputs', () => {
  const topics = [
    { topic: 'a', partitions: 4 },
    { topic: 'b', partitions: 3 },
  ];
  const forward = assignPartitions(members(3), topics);
  const backward = assignPartitions([...members(3)].reverse(), [...topics].reverse());
  assert.deepEqual(backward, forward);
});

test('assignPartitions only gives a topic to members subscribed to it', () => {
  const result = assignPartitions(
    [
      { memberId: 'x', topics: ['a'] },
      { memberId: 'y', topics: ['a', 'b'] },
      { memberId: 'z', topics: ['c'] },
    ],
    [
      { topic: 'a', partitions: 4 },
      { topic: 'b', partitions: 2 },
      { topic: 'd', partitions: 2 },
    ],
  );
  for (const r of result.filter((r) => r.topic === 'b')) assert.equal(r.memberId, 'y');
  assert.equal(result.filter((r) => r.topic === 'a').length, 4);
  assert.equal(result.filter((r) => r.topic === 'd').length, 0, 'a topic nobody subscribes to is not assigned');
  assert.equal(result.filter((r) => r.memberId === 'z').length, 0, 'c has no partitions (topic does not exist yet)');
  assert.deepEqual(assignPartitions([], [{ topic: 'a', partitions: 3 }]), []);
});
