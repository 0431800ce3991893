import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contentDigest, type DigestInput } from '../../../src/consumer/content-digest.ts';
import { truncateUtf8 } from '../../../src/consumer/delivery.ts';

const base: DigestInput = {
  id: '0190c1d2-0000-7000-8000-000000000001',
  type: 'credit',
  key: 'k1',
  version: 1,
  payload: Buffer.from('{"n":1}'),
};

test('the digest covers id, type, key, version and payload bytes, each on its own', () => {
  const digest = contentDigest(base);
  assert.match(digest, /^[0-9a-f]{32}$/);
  assert.equal(contentDigest({ ...base, payload: Buffer.from('{"n":1}') }), digest, 'same content, same digest');
  const variants: DigestInput[] = [
    { ...base, id: `${base.id}x` },
    { ...base, type: 'debit' },
    { ...base, key: 'k2' },
    { ...base, version: 2 },
    { ...base, payload: Buffer.from('{"n":2}') },
    { ...base, payload: Buffer.from('{"n": 1}') },
  ];
  for (const v of variants) assert.notEqual(contentDigest(v), digest, JSON.stringify({ ...v, payload: v.payload.toString() }));
});

test('field boundaries are part of the digest: moving bytes between fields changes it', () => {
  assert.notEqual(contentDigest({ ...base, type: 'ab', key: 'c' }), contentDigest({ ...base, type: 'a', key: 'bc' }));
  assert.notEqual(
    contentDigest({ ...base, key: 'k', payload: Buffer.from('1x') }),
    contentDigest({ ...base, key: 'k1', payload: Buffer.from('x') }),
  );
});

test('failure text is cut to a byte bound at a character boundary', () => {
  assert.equal(truncateUtf8('short', 10), 'short');
  const cut = truncateUtf8('é'.repeat(100), 11);
  assert.ok(Buffer.byteLength(cut) <= 11);
  assert.equal(cut, 'éééé…');
  assert.ok(Buffer.byteLength(truncateUtf8('😀'.repeat(1000), 2048)) <= 2048);
  assert.ok(!truncateUtf8('😀'.repeat(1000), 2048).includes('\uFFFD'));
});
