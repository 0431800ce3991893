import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COPY_HEADROOM_BYTES } from '../../../src/adapters/kafka/kafka-admin.ts';
import type { LaneControl } from '../../../src/consumer/key-lanes.ts';
import { newDelivery } from '../../../src/consumer/delivery.ts';
import { dlqHeaders } from '../../../src/consumer/middleware/dead-letter.ts';
import { retryCopy } from '../../../src/consumer/middleware/retry.ts';

/** Bytes the headers take on the wire beyond `original`: name and value plus two length varints each. */
function addedBytes(headers: Record<string, string>, original: Record<string, string>): number {
  let n = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (original[name] === value) continue;
    n += Buffer.byteLength(name) + Buffer.byteLength(value) + 4;
  }
  return n;
}

// Names at their limits: Kafka topics 249 characters, group ids 255 (here 4-byte characters, the worst).
const topic = 't'.repeat(249);
const group = '😀'.repeat(127);
const huge = `${'é'.repeat(50_000)}😀`;

test('the failure headers of a .dlq copy stay within the room doctor asks for, whatever the error and stack', () => {
  const original = { 'zl-id': 'x', 'zl-type': 'credit' };
  const now = new Date();
  const headers = dlqHeaders(
    group,
    {
      groupId: group,
      idempotencyKey: 'x',
      messageId: 'x',
      topic,
      partition: 2_147_483_647,
      offset: 9_223_372_036_854_775_807n,
      key: 'k',
      type: 'credit',
      headers: original,
      payload: Buffer.alloc(0),
      errorCode: 'ZL_UNSUPPORTED_VERSION',
      error: huge,
      stack: huge,
      attempts: 2_147_483_647,
      firstFailureAt: now,
      lastFailureAt: now,
    },
    '9223372036854775807',
  );
  const added = addedBytes(headers, original);
  assert.ok(added < 5 * 1024, `${added} bytes added`);
  assert.ok(added < COPY_HEADROOM_BYTES);
});

test('the attempt headers of a retry copy stay within the same room', () => {
  const record = {
    topic,
    key: 'k',
    value: Buffer.alloc(0),
    headers: { 'zl-id': 'x' },
    partition: 2_147_483_647,
    offset: 9_223_372_036_854_775_807n,
  };
  const d = newDelivery(record, { groupId: group, signal: new AbortController().signal, lane: {} as LaneControl, epoch: 1 });
  d.attempt = 2_147_483_647;
  d.firstFailureAt = new Date();
  d.lastFailureAt = new Date();
  const copy = retryCopy(d, 1_000, huge);
  const added = addedBytes(copy.headers, record.headers);
  assert.ok(added < 2 * 1024, `${added} bytes added`);
});
