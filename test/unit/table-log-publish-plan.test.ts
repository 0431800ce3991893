import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunks, planPublish, TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../src/adapters/table-log/table-log-subscriber.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import type { OutgoingRecord } from '../../src/core/envelope.ts';
import type { Database } from '../../src/ports/sql-executor.ts';

const rec = (topic: string, key: string, value = 'v', headers: Record<string, string> = {}): OutgoingRecord => ({
  topic,
  key,
  value: Buffer.from(value),
  headers,
});
const counts = new Map([
  ['orders', 4],
  ['audit', 1],
]);

test('planPublish places each record with the Kafka partitioner and keeps array order', () => {
  const { outcomes, planned } = planPublish([rec('orders', 'a'), rec('audit', 'a'), rec('orders', 'b')], counts, 1000);
  assert.deepEqual(outcomes, [undefined, undefined, undefined]);
  assert.deepEqual(
    planned.map((p) => [p.index, p.topic, p.partition]),
    [
      [0, 'orders', partitionFor('a', 4)],
      [1, 'audit', 0],
      [2, 'orders', partitionFor('b', 4)],
    ],
  );
});

test('planPublish fails a bad record alone and holds back later records of its topic and key', () => {
  const records = [
    rec('orders', 'a', 'first'),
    rec('orders', 'a', 'x'.repeat(2000)), // too large
    rec('orders', 'a', 'after the failure'),
    rec('audit', 'a', 'same key, other topic'),
    rec('orders', 'b', 'other key'),
    rec('missing', 'c'),
    rec('missing', 'c'),
    rec('orders', 'nul\u0000key'),
    rec('orders', 'd', 'v', { bad: 'nul\u0000value' }),
    { topic: 'bad topic!', key: 'e', value: Buffer.from('v'), headers: {} },
  ];
  const { outcomes, planned } = planPublish(records, counts, 1000);
  assert.deepEqual(
    planned.map((p) => p.index),
    [0, 3, 4],
  );
  const failure = (i: number) => {
    const o = outcomes[i];
    assert.ok(o && !o.ok, `record ${i} should fail`);
    return o;
  };
  assert.equal(failure(1).error.code, 'ZL_PAYLOAD_TOO_LARGE');
  assert.equal(failure(1).attempted, true);
  assert.equal(failure(2).attempted, false, 'held back behind the failed record of its key');
  assert.equal(failure(2).error, failure(1).error);
  assert.equal(failure(5).error.code, 'ZL_TOPIC_UNAVAILABLE');
  assert.equal(failure(5).error.retryable, true, 'a topic created later makes the next attempt succeed');
  assert.equal(failure(6).attempted, false);
  assert.equal(failure(7).error.code, 'ZL_INVALID_KEY');
  assert.equal(failure(8).error.code, 'ZL_INVALID_MESSAGE');
  assert.equal(failure(9).error.code, 'ZL_INVALID_TOPIC');
});

test('table log configs reject unknown keys by name and inconsistent timings', () => {
  const db = {} as Database;
  assert.throws(() => new TableLogPublisher(db, { schema: 'zeroloss', maxRecordByte: 10 } as never), {
    code: 'ZL_INVALID_CONFIG',
    message: /maxRecordByte/,
  });
  assert.throws(() => new TableLogSubscriber(db, { pollInterval: 5 } as never), { code: 'ZL_INVALID_CONFIG', message: /pollInterval/ });
  assert.throws(() => new TableLogSubscriber(db, { heartbeatIntervalMs: 1000, sessionTimeoutMs: 1500 }), {
    code: 'ZL_INVALID_CONFIG',
    message: /sessionTimeoutMs/,
  });
  assert.throws(() => new TableLogPublisher(db, { schema: 'Bad-Schema' }), { code: 'ZL_INVALID_IDENTIFIER' });
});

test('chunks splits a big batch by record count and bytes, never leaving a record out', () => {
  const planned = (sizes: number[]) =>
    sizes.map((n, index) => ({ index, topic: 't', partition: 0, key: '', headersJson: '', value: Buffer.alloc(n) }));
  assert.deepEqual(chunks(planned([]), 2, 100), []);
  assert.deepEqual(chunks(planned([1, 1, 1, 1, 1]), 2, 100), [
    [0, 2],
    [2, 4],
    [4, 5],
  ]);
  assert.deepEqual(chunks(planned([60, 60, 500, 10]), 10, 100), [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 4],
  ]);
  assert.deepEqual(chunks(planned([30, 30, 30, 30]), 10, 100), [
    [0, 3],
    [3, 4],
  ]);
});
