import assert from 'node:assert/strict';
import { test } from 'node:test';
import { partitionFor } from '../../src/core/partition-for.ts';

// murmur2 values from Kafka's own UtilsTest (org.apache.kafka.common.utils.UtilsTest#testMurmur2); the
// Java client's default partitioner uses toPositive(murmur2(key)) % partitions.
const KAFKA_MURMUR2: Array<[string, number]> = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
];

test('partitionFor puts a key where the Kafka Java client would', () => {
  for (const [key, hash] of KAFKA_MURMUR2) {
    for (const partitions of [1, 3, 7, 12, 100]) {
      assert.equal(partitionFor(key, partitions), (hash & 0x7fffffff) % partitions, `${key} over ${partitions}`);
    }
  }
});

test('partitionFor stays in range, is stable, and hashes UTF-8 bytes', () => {
  for (let i = 0; i < 1000; i++) {
    const p = partitionFor(`user-${i}`, 6);
    assert.ok(p >= 0 && p < 6);
    assert.equal(partitionFor(`user-${i}`, 6), p);
  }
  assert.equal(partitionFor('ключ-🔑', 1), 0);
  assert.equal(partitionFor('', 4), partitionFor('', 4));
});

test('partitionFor refuses a partition count that is not a positive integer', () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => partitionFor('k', bad), RangeError);
});
