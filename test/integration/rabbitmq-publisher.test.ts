import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { RabbitMqAdmin } from '../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RabbitMqPublisher } from '../../src/adapters/rabbitmq/rabbitmq-publisher.ts';
import { ZerolossError } from '../../src/core/errors.ts';
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
