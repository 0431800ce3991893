import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqInspector } from '../../src/adapters/rabbitmq/rabbitmq-inspector.ts';
import { rabbitNames } from '../../src/adapters/rabbitmq/rabbitmq-names.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { RabbitMqSubscriber } from '../../src/adapters/rabbitmq/rabbitmq-subscriber.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import type { BrokerRecord, ReadStats } from '../../src/ports/broker-inspector.ts';
import { uniqueId } from '../helpers/consumer-fixtures.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const PARTITIONS = 3;
const N = 30;

/** N records over 3 partitions, each with a created-at 1 s apart from 2026-01-01, as the relay writes them. */
const T0 = Date.parse('2026-01-01T00:00:00Z');
function records(topic: string) {
  return Array.from({ length: N }, (_, i) => ({
    topic,
    key: `k${i % 7}`,
    value: Buffer.from([0xff, 0x00, i]),
    headers: { 'zl-id': `m${i}`, 'zl-created-at': new Date(T0 + i * 1_000).toISOString(), note: 'é' },
  }));
}

describe('RabbitMQ inspector: streams read without consuming', () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}-insp`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const inspector = new RabbitMqInspector({ url: RABBITMQ_URL });
  const groupId = uniqueId('insp');
  const perPartition = new Map<number, number>();

  before(async () => {
    await admin.createTopic(topic, PARTITIONS);
    const sent = records(topic);
    const outcomes = await publisher.publish(sent);
    assert.ok(outcomes.every((o) => o.ok));
    for (const r of sent) {
      const p = partitionFor(r.key, PARTITIONS);
      perPartition.set(p, (perPartition.get(p) ?? 0) + 1);
    }
  });

  after(async () => {
    await publisher.close();
    await inspector.close();
    await admin.deleteTopic(topic).catch(() => {});
    await admin.deleteGroupOffsets(groupId, topic, PARTITIONS).catch(() => {});
    await admin.close();
  });

  test('watermarks per partition after N publishes; undefined for a topic that does not exist', async () => {
    const marks = await inspector.watermarks(topic);
    assert.deepEqual(
      marks,
      Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, low: 0n, high: BigInt(perPartition.get(partition) ?? 0) })),
    );
    assert.equal(await inspector.watermarks(`${topic}-none`), undefined);
  });

  test('listTopics lists a created topic and forgets a deleted one', async () => {
    const other = `${topic}-gone`;
    await admin.createTopic(other, 1);
    const listed = await inspector.listTopics();
    assert.ok(listed.includes(topic) && listed.includes(other), JSON.stringify(listed));
    await admin.deleteTopic(other);
    assert.ok(!(await inspector.listTopics()).includes(other));
  });

  test('read returns the records of a range with key, bytes, headers and created-at as the timestamp', async () => {
    const p = partitionFor('k3', PARTITIONS);
    const stats: ReadStats = { records: 0, incomplete: [] };
    const got: BrokerRecord[] = [];
    for await (const r of inspector.read([{ topic, partition: p, from: 1n, to: 3n }], stats)) got.push(r);
    assert.deepEqual(
      got.map((r) => r.offset),
      [1n, 2n],
    );
    assert.deepEqual(stats, { records: 2, incomplete: [] });
    const all: BrokerRecord[] = [];
    for await (const r of inspector.read([{ topic, partition: p, from: 0n, to: BigInt(perPartition.get(p)!) }])) all.push(r);
    const k3 = all.find((r) => r.key === 'k3')!;
    const i = Number(k3.headers['zl-id']!.slice(1));
    assert.deepEqual(k3.value, Buffer.from([0xff, 0x00, i]));
    assert.deepEqual(k3.headers, { 'zl-id': `m${i}`, 'zl-created-at': new Date(T0 + i * 1_000).toISOString(), note: 'é' });
    assert.equal(k3.timestamp, T0 + i * 1_000);
    assert.equal(k3.topic, topic);
    assert.equal(k3.partition, p);
  });

  test('a range past the end is reported incomplete, not waited on forever', async () => {
    const quick = new RabbitMqInspector({ url: RABBITMQ_URL, idleMs: 300 });
    try {
      const stats: ReadStats = { records: 0, incomplete: [] };
      const p = 0;
      const high = BigInt(perPartition.get(p) ?? 0);
      for await (const _ of quick.read([{ topic, partition: p, from: high, to: high + 5n }], stats)) assert.fail('nothing there');
      assert.equal(stats.incomplete.length, 1);
      assert.equal(stats.incomplete[0]?.reached, high);
    } finally {
      await quick.close();
    }
  });

  test('offsetsForTime: where the records appended from a time on start (a second early at most, never late)', async () => {
    const timed = `${topic}-time`;
    await admin.createTopic(timed, 1);
    try {
      const five = (from: number) => records(timed).slice(from, from + 5);
      const startedAt = Date.now();
      assert.ok((await publisher.publish(five(0))).every((o) => o.ok));
      const between = Date.now();
      assert.ok((await publisher.publish(five(5))).every((o) => o.ok));
      const [before] = await inspector.offsetsForTime(timed, startedAt - 60_000);
      const [mid] = await inspector.offsetsForTime(timed, between);
      const [later] = await inspector.offsetsForTime(timed, Date.now() + 60_000);
      assert.deepEqual(before, { partition: 0, offset: 0n });
      assert.ok(mid!.offset <= 5n, `the second five (offsets 5-9) are inside a window from ${between}: ${mid!.offset}`);
      assert.deepEqual(later, { partition: 0, offset: 10n }, 'nothing appended after: the high watermark');
    } finally {
      await admin.deleteTopic(timed);
    }
  });

  test('committed offsets of a group after its consumer commits; the offset queue keeps its message', async () => {
    assert.deepEqual(await inspector.committedOffsets(groupId), []);
    const subscriber = new RabbitMqSubscriber({ url: RABBITMQ_URL, heartbeatIntervalMs: 200, sessionTimeoutMs: 2_000 });
    const seen: Array<{ partition: number; offset: bigint }> = [];
    const sub = await subscriber.subscribe({
      groupId,
      topics: [topic],
      onRecords: (batch) => {
        for (const r of batch.records) seen.push({ partition: batch.partition, offset: r.offset });
      },
    });
    try {
      await waitFor(() => seen.length === N, { what: 'every record delivered' });
      // Commit part of partition 0 and all of the others.
      const high = (p: number) => BigInt(perPartition.get(p) ?? 0);
      await sub.commit([
        { topic, partition: 0, offset: 2n },
        ...Array.from({ length: PARTITIONS - 1 }, (_, i) => ({ topic, partition: i + 1, offset: high(i + 1) })),
      ]);
      const expected = [
        { topic, partition: 0, offset: 2n },
        ...Array.from({ length: PARTITIONS - 1 }, (_, i) => ({ topic, partition: i + 1, offset: high(i + 1) })),
      ];
      assert.deepEqual(await inspector.committedOffsets(groupId), expected);
      // Read twice: the first read put every offset back.
      assert.deepEqual(await inspector.committedOffsets(groupId), expected);
    } finally {
      await sub.close();
    }
  });

  test('a reader never takes an offset another reader holds for "no offset": it waits, then fails retryably', async () => {
    const conn = await amqp.connect(RABBITMQ_URL);
    const ch = await conn.createChannel();
    try {
      // Another reader (a member taking partition 0 over) is between its get and its put-back, and stays there.
      const peek = rabbitNames.peek(groupId, topic, 0);
      await ch.assertQueue(peek, { exclusive: true, durable: false });
      const message = await ch.get(rabbitNames.offset(groupId, topic, 0), { noAck: false });
      assert.ok(message, 'the committed offset of partition 0');
      await assert.rejects(inspector.committedOffsets(groupId), { code: 'ZL_TRANSPORT_UNAVAILABLE', retryable: true });
      ch.nack(message, false, true);
      await ch.deleteQueue(peek);
      const offsets = await inspector.committedOffsets(groupId);
      assert.deepEqual(
        offsets.find((o) => o.partition === 0),
        { topic, partition: 0, offset: 2n },
      );
    } finally {
      await conn.close();
    }
  });
});
