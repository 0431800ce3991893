import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgHashText, walShardExpression, walShardOf } from '../../../src/core/wal-shard.ts';
import { prng } from '../../helpers/prng.ts';

// hashtext(k), (hashtext(k) & 2147483647) % 2 and % 7, as PostgreSQL 15.20 (x86_64) answered them. Keys of
// every tail length (0-11 bytes after the 12-byte blocks) and multi-byte UTF-8. A key that changed shard
// would be streamed by two slots in no order relative to each other: these values must never change.
const PINNED: Array<[string, number, number, number]> = [
  ['', -1477818771, 1, 0],
  ['a', 1075015857, 1, 6],
  ['ab', 1718550461, 1, 5],
  ['abc', -785388649, 1, 6],
  ['abcd', -393934804, 0, 5],
  ['abcde', -445659580, 0, 0],
  ['order-7', 1181968615, 1, 2],
  ['customer', -1205532144, 0, 4],
  ['customer1', -1158867961, 1, 3],
  ['customer12', -2044781942, 0, 2],
  ['customer123', 1357159868, 0, 1],
  ['customer-123', -1519933274, 0, 3],
  ['customer-1234', -1323400244, 0, 4],
  ['key-0', 1880814873, 1, 0],
  ['key-99', 1003068066, 0, 0],
  ['jé', -1802993665, 1, 5],
  ['中文キー🔑', -576086559, 1, 3],
  ['x'.repeat(24), 1380215333, 1, 0],
  ['x'.repeat(37), 1444655425, 1, 3],
];

test("walShardOf and pgHashText give PostgreSQL's hashtext shards for pinned keys", () => {
  for (const [key, hash, of2, of7] of PINNED) {
    assert.equal(pgHashText(key), hash, `hashtext(${JSON.stringify(key)})`);
    assert.equal(walShardOf(key, 2), of2, `shard of 2 for ${JSON.stringify(key)}`);
    assert.equal(walShardOf(key, 7), of7, `shard of 7 for ${JSON.stringify(key)}`);
  }
});

test('a key maps to one shard in range, the same on every call, and keys spread over the shards', () => {
  const random = prng(9);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4_000; i++) {
    const key = `k-${Math.floor(random() * 1e9)}`;
    const shard = walShardOf(key, 4);
    assert.ok(shard >= 0 && shard < 4);
    assert.equal(walShardOf(key, 4), shard);
    counts[shard] = (counts[shard] as number) + 1;
  }
  for (const n of counts) assert.ok(n > 800 && n < 1_200, `counts ${counts}`);
});

test('the row filter names the shard and the count, and refuses a shard out of range', () => {
  assert.equal(walShardExpression('msg_key', 1, 2), '(hashtext(msg_key) & 2147483647) % 2 = 1');
  assert.throws(() => walShardExpression('msg_key', 2, 2), RangeError);
  assert.throws(() => walShardExpression('msg_key', 0, 0), RangeError);
});
