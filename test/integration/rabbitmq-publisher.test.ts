import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import amqp from 'amqplib';
import { promisify } from 'node:util';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { partitionFor } from '../../src/core/partition-for.ts';
import { waitFor } from '../helpers/wait-for.ts';

const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const execFileAsync = promisify(execFile);

test('a publisher whose connection the broker closed reports failures as outcomes and reconnects', { timeout: 60_000 }, async () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 2);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  try {
    const record = (v: string) => ({ topic, key: 'k', value: Buffer.from(v), headers: {} });
    assert.ok((await publisher.publish([record('before')]))[0]?.ok);
    const { stdout } = await execFileAsync('rabbitmqctl', [
      'list_connections',
      '--quiet',
      '--no-table-headers',
      'pid',
      'client_properties',
    ]);
    const pid = stdout
      .split('\n')
      .find((l) => l.includes(`zeroloss-publisher-${publisher.instance}`))
      ?.split('\t')[0]
      ?.trim();
    assert.ok(pid, "the publisher's connection is listed by its name");
    await execFileAsync('rabbitmqctl', ['close_connection', pid, 'zeroloss test: connection closed on purpose']);
    let calls = 0;
    await waitFor(
      async () => {
        calls++;
        const [outcome] = await publisher.publish([record(`after-${calls}`)]);
        assert.ok(outcome);
        if (!outcome.ok) {
          assert.ok(outcome.error instanceof ZerolossError && outcome.error.retryable, 'a failure is a retryable ZerolossError');
          assert.equal(outcome.attempted, true);
        }
        return outcome.ok;
      },
      { timeoutMs: 30_000, what: 'a publish after the connection was closed to go through' },
    );
    assert.ok(calls <= 2, `took ${calls} calls to reconnect`);
  } finally {
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.close();
  }
});

/**
 * Holds the confirm of the record whose body is `held` until the test lets it through, and logs every
 * body the publisher hands amqplib, in order: a late confirm on one key, without a slow broker.
 */
async function interceptPublishes(held: string): Promise<{ log: string[]; release: () => boolean; restore: () => void }> {
  type Publish = (
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: unknown,
    cb?: (err: unknown, ok: unknown) => void,
  ) => boolean;
  // amqplib exports no channel classes; a channel of its own gives the prototype the publisher's share.
  const conn = await amqp.connect(RABBITMQ_URL);
  const ConfirmChannel = { prototype: Object.getPrototypeOf(await conn.createConfirmChannel()) as { publish: Publish } };
  await conn.close();
  const original = ConfirmChannel.prototype.publish;
  const log: string[] = [];
  let late: (() => void) | undefined;
  ConfirmChannel.prototype.publish = function (this: unknown, exchange, routingKey, content, options, cb) {
    const body = content.toString();
    log.push(body);
    const confirmed = body === held && cb ? (err: unknown, ok: unknown) => (late = () => cb(err, ok)) : cb;
    return original.call(this, exchange, routingKey, content, options, confirmed);
  };
  return {
    log,
    release: () => {
      if (!late) return false;
      late();
      return true;
    },
    restore: () => {
      ConfirmChannel.prototype.publish = original;
    },
  };
}

/** A key per partition of a `partitions`-partition topic, so the test knows which queue each key uses. */
function keysByPartition(partitions: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.filter(Boolean).length < partitions; i++) keys[partitionFor(`k${i}`, partitions)] ??= `k${i}`;
  return keys;
}

test("a key whose confirm is late holds back only its own next record; other keys' later records go without waiting", {
  timeout: 60_000,
}, async () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 2);
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL });
  const [slow, fast] = keysByPartition(2) as [string, string];
  const intercept = await interceptPublishes('slow-1');
  try {
    const record = (key: string, v: string) => ({ topic, key, value: Buffer.from(v), headers: {} });
    const call = publisher.publish([
      record(slow, 'slow-1'),
      ...Array.from({ length: 5 }, (_, i) => record(fast, `fast-${i + 1}`)),
      record(slow, 'slow-2'),
    ]);
    // Sent in rounds (the n-th record of every key, then a wait for all their confirms), fast-2 would wait
    // for slow-1's confirm.
    await waitFor(() => intercept.log.includes('fast-5'), { timeoutMs: 10_000, what: "the other key's five records to go out" });
    assert.ok(!intercept.log.includes('slow-2'), "the key's next record is not published before its predecessor's confirm");
    await waitFor(() => intercept.release(), { timeoutMs: 10_000, what: "slow-1's confirm" });
    const outcomes = await call;
    assert.ok(
      outcomes.every((o) => o.ok),
      'every record is sent',
    );
    assert.ok(intercept.log.indexOf('slow-2') > intercept.log.indexOf('fast-5'), 'slow-2 went out after its predecessor was confirmed');
  } finally {
    intercept.restore();
    await publisher.close();
    await admin.deleteTopic(topic);
    await admin.close();
  }
});

test('a record failed while sending (its queue is gone) holds back the rest of its key unpublished; other keys go', {
  timeout: 60_000,
}, async () => {
  const topic = `zl-it-${randomBytes(4).toString('hex')}`;
  const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
  await admin.createTopic(topic, 2);
  // The partition count stays cached, so the publisher sends to the partition that was deleted under it.
  const publisher = new RabbitMqPublisher({ url: RABBITMQ_URL, metadataMaxAgeMs: 600_000 });
  const [other, gone] = keysByPartition(2) as [string, string];
  const conn = await amqp.connect(RABBITMQ_URL);
  const intercept = await interceptPublishes('');
  try {
    const record = (key: string, v: string) => ({ topic, key, value: Buffer.from(v), headers: {} });
    assert.ok((await publisher.publish([record(gone, 'warm-up')]))[0]?.ok);
    const ch = await conn.createChannel();
    await ch.deleteQueue(`${topic}:1`);
    const outcomes = await publisher.publish([
      record(gone, 'gone-1'),
      record(other, 'other-1'),
      record(gone, 'gone-2'),
      record(other, 'other-2'),
      record(gone, 'gone-3'),
    ]);
    const [gone1, other1, gone2, other2, gone3] = outcomes;
    assert.ok(gone1 && !gone1.ok && gone1.attempted, 'the record to the missing queue fails, attempted');
    assert.equal(gone1.error.code, 'ZL_TOPIC_UNAVAILABLE');
    for (const o of [gone2, gone3]) {
      assert.ok(o && !o.ok, 'a later record of the key is not sent');
      assert.equal(o.attempted, false, 'a later record of the key is held back');
    }
    assert.ok(other1?.ok && other2?.ok, "the other key's records are sent");
    assert.ok(!intercept.log.includes('gone-2') && !intercept.log.includes('gone-3'), 'held-back records never reach the channel');
  } finally {
    intercept.restore();
    await conn.close();
    await publisher.close();
    await admin.deleteTopic(topic).catch(() => {});
    await admin.close();
  }
});
