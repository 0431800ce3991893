import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Consumer } from '@platformatic/kafka';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../src/adapters/kafka/kafka-subscriber.ts';
import type { IncomingRecord } from '../../src/core/envelope.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import { createTopic, KAFKA_BROKERS, uniqueTopic } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait-for.ts';

/**
 * Where each assigned partition starts: the position kept with the effects (startOffsets) where there is
 * one, else the group's committed offset (the port's promise, transport.ts), else `startFrom`. A partition
 * the stored positions did not cover started at `startFrom`: with 'latest' its backlog was skipped, with
 * 'earliest' replayed from the beginning.
 */
test('a partition the stored offsets do not cover starts at its committed offset, not at startFrom', async () => {
  const topic = uniqueTopic('zl-start');
  await createTopic(topic, 2);
  const keys = Array.from({ length: 400 }, (_, i) => `k${i}`);
  const on = (p: number) => keys.filter((k) => partitionFor(k, 2) === p).slice(0, 10);
  const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
  try {
    for (const o of await publisher.publish([...on(0), ...on(1)].map((key) => ({ topic, key, value: Buffer.from(key), headers: {} })))) {
      assert.ok(o.ok);
    }
  } finally {
    await publisher.close();
  }
  const groupId = `${topic}-g`;
  // The group committed partition 1 up to offset 4 (and nothing on partition 0).
  const first: IncomingRecord[] = [];
  const committer = await new KafkaSubscriber({ brokers: KAFKA_BROKERS, clientId: 'zl-start-1' }).subscribe({
    groupId,
    topics: [topic],
    onRecords: (batch) => first.push(...batch.records),
  });
  try {
    await waitFor(() => first.length === 20, { what: 'the first member reading everything', timeoutMs: 30_000 });
    await committer.commit([{ topic, partition: 1, offset: 4n }]);
  } finally {
    await committer.close();
  }
  const records: IncomingRecord[] = [];
  const subscription = await new KafkaSubscriber({ brokers: KAFKA_BROKERS, clientId: 'zl-start-2', startFrom: 'latest' }).subscribe({
    groupId,
    topics: [topic],
    onRecords: (batch) => records.push(...batch.records),
    // Kept with the effects: partition 0 only.
    startOffsets: async () => [{ topic, partition: 0, offset: 7n }],
  });
  try {
    await waitFor(() => records.filter((r) => r.partition === 0).length === 3 && records.some((r) => r.partition === 1), {
      what: 'partition 0 from its stored offset and partition 1 from its committed one',
      timeoutMs: 30_000,
    });
    const offsets = (p: number) => records.filter((r) => r.partition === p).map((r) => Number(r.offset));
    assert.deepEqual(offsets(0), [7, 8, 9]);
    await waitFor(() => offsets(1).length === 6, { what: 'partition 1 from offset 4', timeoutMs: 10_000 });
    assert.deepEqual(offsets(1), [4, 5, 6, 7, 8, 9]);
  } finally {
    await subscription.close();
  }
});

test('a stream reopened after a fetch error resumes after the records it handed over, not at startFrom', async () => {
  // A new group reading from 'latest' hands records over, none finished (nothing committed), and a fetch
  // fails: the stream reopened at the committed offsets, of which there were none, so at the end, past the
  // records published meanwhile; once later ones finished, the commit moved past those never handed over.
  const topic = uniqueTopic('zl-reopen');
  await createTopic(topic, 1);
  const publisher = new KafkaPublisher({ brokers: KAFKA_BROKERS });
  const publish = async (from: number, to: number) => {
    const batch = Array.from({ length: to - from }, (_, i) => ({ topic, key: 'k', value: Buffer.from(String(from + i)), headers: {} }));
    for (const o of await publisher.publish(batch)) assert.ok(o.ok);
  };
  const proto = Consumer.prototype as unknown as {
    fetch: (options: unknown, callback: (error: Error | null, r?: unknown) => void) => unknown;
  };
  const fetch = proto.fetch;
  let failNext = false;
  proto.fetch = function (this: unknown, options, callback) {
    if (failNext) {
      failNext = false;
      callback(new Error('fetch failed (test)'));
      return undefined;
    }
    return fetch.call(this, options, callback);
  };
  const values: string[] = [];
  const errors: Error[] = [];
  const assigned: number[] = [];
  const subscription = await new KafkaSubscriber({
    brokers: KAFKA_BROKERS,
    clientId: 'zl-reopen',
    startFrom: 'latest',
    maxWaitMs: 100,
  }).subscribe({
    groupId: `${topic}-g`,
    topics: [topic],
    onRecords: (batch) => values.push(...batch.records.map((r) => r.value.toString())),
    onAssign: (partitions) => assigned.push(...partitions.map((p) => p.partition)),
    onError: (error) => errors.push(error),
  });
  try {
    await waitFor(() => assigned.length > 0, { what: 'the partition assigned' });
    // The stream has its position at the end before anything is published: read records 0-4.
    await publish(0, 5);
    await waitFor(() => values.length === 5, { what: 'the first five handed over', timeoutMs: 20_000 });
    failNext = true;
    await waitFor(() => errors.some((e) => /fetch failed \(test\)/.test(e.message)), { what: 'the fetch error' });
    // Published while the stream is down (it reopens a second later).
    await publish(5, 10);
    await waitFor(() => values.length >= 10, { what: 'the five published meanwhile', timeoutMs: 20_000 });
    assert.deepEqual(values, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  } finally {
    proto.fetch = fetch;
    await subscription.close();
    await publisher.close();
  }
});
