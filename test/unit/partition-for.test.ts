import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compatibilityPartitioner } from '@platformatic/kafka';
import { partitionFor } from '../../src/core/partition-for.ts';
import { prng } from '../helpers/prng.ts';

// Code points from ASCII to astral planes, so keys hash as 1-, 2-, 3- and 4-byte UTF-8 sequences.
const ALPHABET = [...'abcXYZ019-_:./ éßçжλ中文キー🔑😀'];

test('partitionFor equals the Kafka client compatibilityPartitioner for 1,000 random keys', () => {
  const random = prng(12);
  for (let i = 0; i < 1_000; i++) {
    const length = Math.floor(random() * 40);
    const key = Array.from({ length }, () => ALPHABET[Math.floor(random() * ALPHABET.length)]).join('');
    const partitions = 1 + Math.floor(random() * 200);
    const expected = compatibilityPartitioner(undefined as never, Buffer.from(key, 'utf8')) % partitions;
    assert.equal(partitionFor(key, partitions), expected, `key ${JSON.stringify(key)} over ${partitions}`);
  }
});

test('ASCII keys (hashed without encoding), up to past the scratch buffer, equal the Kafka client too', () => {
  const random = prng(13);
  const ascii = [...'abcXYZ0123456789-_:./ ~!'];
  for (let i = 0; i < 1_000; i++) {
    const length = i < 10 ? 250 + i : Math.floor(random() * 64);
    const key = Array.from({ length }, () => ascii[Math.floor(random() * ascii.length)]).join('');
    const partitions = 1 + Math.floor(random() * 200);
    const expected = compatibilityPartitioner(undefined as never, Buffer.from(key, 'utf8')) % partitions;
    assert.equal(partitionFor(key, partitions), expected, `key ${JSON.stringify(key)} over ${partitions}`);
  }
  // One ASCII key after a longer one: the reused buffer's tail must not leak into the hash.
  assert.equal(partitionFor('ab', 97), compatibilityPartitioner(undefined as never, Buffer.from('ab')) % 97);
});
