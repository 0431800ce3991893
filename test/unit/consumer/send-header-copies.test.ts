import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LaneControl } from '../../../src/consumer/key-lanes.ts';
import { newDelivery, originalHeaders } from '../../../src/consumer/delivery.ts';
import { retryCopy } from '../../../src/consumer/middleware/retry.ts';
import { SEND_TRACEPARENT_HEADER } from '../../../src/ports/tracing.ts';

// The relay's per-send header names the send that delivered this copy; a retry copy or a dead letter is
// sent by the consumer, so it must not carry it on (its process span would link to a send that is not its own).
test('retry copies and dead letters leave out the relay’s per-send header, and keep the stored trace context', () => {
  const headers = {
    'zl-id': 'x',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    [SEND_TRACEPARENT_HEADER]: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01',
  };
  const record = { topic: 'orders', key: 'k', value: Buffer.alloc(0), headers, partition: 0, offset: 7n };
  const d = newDelivery(record, { groupId: 'g', signal: new AbortController().signal, lane: {} as LaneControl, epoch: 1 });
  d.firstFailureAt = new Date();
  d.lastFailureAt = new Date();
  const copy = retryCopy(d, 1_000, 'busy');
  assert.equal(copy.headers[SEND_TRACEPARENT_HEADER], undefined);
  assert.equal(copy.headers.traceparent, headers.traceparent);
  assert.deepEqual(originalHeaders(headers), { 'zl-id': 'x', traceparent: headers.traceparent });
});
