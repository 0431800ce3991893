import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { defaultLogger } from '../../src/adapters/log/default-logger.ts';
import { jsonLogger } from '../../src/adapters/log/json-logger.ts';
import { createConsumer, createOutbox, createRelay, PermanentError } from '../../src/index.ts';
import { postgres } from '../../src/entry/postgres.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const schema = uniqueName('zllogs');
const store = postgres(PG_URL, { schema });
const transport = tableLog(store);

before(() => store.migrate());
after(async () => {
  await transport.close();
  await store.transaction((tx) => tx.query(`drop schema if exists "${schema}" cascade`)).catch(() => {});
  await store.close();
});

/** A log destination that keeps each line, parsed: every line must be one JSON object. */
function capture(): { write(line: string): void; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return {
    lines,
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') lines.push(JSON.parse(line));
    },
  };
}

test('relay and consumer write JSON lines with level, component, message id, topic and partition', async () => {
  const out = capture();
  const logger = defaultLogger({ destination: out, level: 'debug' });
  const topic = 'payments';
  const outbox = createOutbox({ store, producerId: 'logs' });
  const first = await store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'p-1', type: 'payment.failed', payload: {} }));

  // Through createRelay, as a user wires it: the logger option must reach the relay.
  const relay = createRelay({ store, transport, logger, pollIntervalMs: 20 });
  await relay.start();
  try {
    // The topic does not exist yet: the row waits, and the relay says so with the message's id and topic.
    const failed = await waitFor(() => out.lines.find((l) => l.msg === 'send failed: will retry' && l.messageId === first.id), {
      what: 'a failed-send line',
    });
    assert.equal(failed.level, 40);
    assert.equal(failed.component, 'relay');
    assert.equal(failed.instance, relay.instanceId);
    assert.equal(failed.topic, topic);
    assert.equal(failed.code, 'ZL_TOPIC_UNAVAILABLE');
    assert.equal(failed.action, 'retry');
    assert.equal(typeof failed.time, 'number');
    await transport.ensureTopic(topic, 2);
    await transport.ensureTopic(`${topic}.dlq`, 1);
    relay.wake();
    const consumer = createConsumer({ store, transport, groupId: uniqueName('g'), topics: [topic], logger });
    consumer.handle('payment.failed', async () => {
      throw new PermanentError('card declined for good');
    });
    await consumer.start();
    try {
      const dead = await waitFor(() => out.lines.find((l) => l.msg === 'dead-lettered' && l.messageId === first.id), {
        what: 'a dead-letter line',
        timeoutMs: 20_000,
      });
      assert.equal(dead.level, 40);
      assert.equal(dead.component, 'consumer');
      assert.equal(dead.group, consumer.config.groupId);
      assert.equal(dead.topic, topic);
      assert.equal(typeof dead.partition, 'number');
      assert.match(String(dead.offset), /^\d+$/);
      assert.equal(dead.code, 'ZL_PERMANENT');
      assert.match(String(dead.reason), /card declined/);
      const assigned = out.lines.find((l) => l.msg === 'partitions assigned' && l.component === 'consumer');
      assert.equal(assigned?.level, 30);
    } finally {
      await consumer.stop();
    }
  } finally {
    await relay.stop();
  }
  const started = out.lines.find((l) => l.msg === 'relay started');
  assert.equal(started?.level, 30);
  assert.equal(started?.component, 'relay');
  assert.ok(
    out.lines.some((l) => l.msg === 'relay round' && l.level === 20 && l.sent === 1),
    'a debug line for the round that sent it',
  );
  assert.ok(out.lines.some((l) => l.msg === 'relay stopped' && l.component === 'relay'));
});

test('without pino the logger writes the same shape of line; levels below the threshold are dropped', () => {
  const out = capture();
  const log = jsonLogger({ level: 'info', write: (line) => out.write(line) }).child({ component: 'relay' });
  log.debug({ messageId: 'm-0' }, 'not written');
  log.warn({ messageId: 'm-1', topic: 't', partition: 3, offset: 7n, err: new Error('boom') }, 'send failed');
  assert.equal(out.lines.length, 1);
  const [line] = out.lines;
  assert.equal(line?.level, 40);
  assert.equal(line?.component, 'relay');
  assert.equal(line?.msg, 'send failed');
  assert.equal(line?.messageId, 'm-1');
  assert.equal(line?.partition, 3);
  assert.equal(line?.offset, '7');
  assert.equal((line?.err as { message?: string } | undefined)?.message, 'boom');
});
