import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignShards } from '../../../src/core/wal-shard-assignment.ts';

const shards = (holders: Array<string | null>) => holders.map((holder, shard) => ({ shard, holder }));
const owners = (m: Map<number, string>) => [...m.keys()].sort((a, b) => a - b).map((k) => m.get(k));

test('with nobody reading, shards go round the members in id order', () => {
  assert.deepEqual(owners(assignShards(shards([null, null, null, null]), ['b', 'a'])), ['a', 'b', 'a', 'b']);
  assert.deepEqual(owners(assignShards(shards([null, null]), ['a', 'b', 'c'])), ['a', 'b']);
});

test('a newcomer takes shards only from members above their share (sticky)', () => {
  // a and c read two each; b joins: one shard moves, to b, and nothing else moves.
  const after = owners(assignShards(shards(['a', 'c', 'a', 'c']), ['a', 'b', 'c']));
  assert.equal(after.filter((m) => m === 'b').length, 1);
  const moved = after.filter((m, i) => m !== ['a', 'c', 'a', 'c'][i]).length;
  assert.equal(moved, 1);
  assert.deepEqual(owners(assignShards(shards(['a', 'a']), ['a', 'b'])), ['a', 'b']);
});

test("a dead reader's shards go to the live ones; a live reader within its share keeps its shards", () => {
  assert.deepEqual(owners(assignShards(shards(['x', 'b', 'x']), ['a', 'b'])), ['a', 'b', 'a']);
  assert.deepEqual(owners(assignShards(shards(['b', 'a']), ['a', 'b'])), ['b', 'a']);
});

test('the same input gives the same answer, whatever the order of members', () => {
  const input = shards(['c', null, 'a', 'c', 'c', null, 'b']);
  const one = owners(assignShards(input, ['a', 'b', 'c']));
  assert.deepEqual(owners(assignShards(input, ['c', 'b', 'a'])), one);
  const counts = ['a', 'b', 'c'].map((m) => one.filter((x) => x === m).length).sort();
  assert.deepEqual(counts, [2, 2, 3]);
});

test('an application_name cut at 63 bytes still names its member', () => {
  const long = `${'h'.repeat(60)}-1234-abcdef`;
  assert.deepEqual(owners(assignShards(shards([long.slice(0, 63), null]), [long, 'z'])), [long, 'z']);
});
