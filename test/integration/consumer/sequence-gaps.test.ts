import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { CONTROL_TOPIC, encodeControl } from '../../../src/core/control-message.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { tableLog } from '../../../src/entry/table-log.ts';
import { createConsumer, createOutbox, createRelay } from '../../../src/index.ts';
import { type ProducerControl, startProducerControl } from '../../../src/operations/producer-control.ts';
import type { SequenceGap } from '../../../src/ports/sequence-store.ts';
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { freePort } from '../../helpers/consumer-workload.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

// Acceptance 4 of issue 16 (C9) on the embedded table log, where a broker record is a row a test can delete.
describe('persistent sequence gaps that heal (C9)', () => {
  const schema = uniqueName('zlsg');
  const store = postgres(PG_URL, { schema, max: 10 });
  const transport = tableLog(store, { subscriber: { heartbeatIntervalMs: 100, sessionTimeoutMs: 2_000, pollIntervalMs: 50 } });
  const outbox = createOutbox({ store, producerId: 'orders-service' });
  const relay = createRelay({ store, transport });
  const registry = new Registry();
  let producer: ProducerControl;
  const resendLog: string[] = [];
  const control = { gapAlarmAfterMs: 150, checkEveryMs: 50, repairBackoffMs: 300 };
  const running: Consumer[] = [];
  let producerClosed = false;
  let served: { child: ChildProcess; output: () => string } | undefined;
  const serve = async () => spawnServe(schema);

  before(async () => {
    await store.migrate();
    await transport.ensureTopic('orders', 1);
    await transport.ensureTopic(CONTROL_TOPIC, 1);
    await store.db.query(`create table "${schema}".effect (message_id text primary key, msg_key text not null, seq int not null)`);
    await relay.start();
    producer = await startProducerControl({
      subscriber: transport.subscriber,
      publisher: transport.publisher,
      sequences: store.sequences,
      outbox: store.operations,
      groupId: `zeroloss-serve.${schema}`,
      marksEveryMs: 0,
      registry,
      onResend: (r, result) => resendLog.push(`${r.group} ${r.key} ${r.fromSeq}..${r.toSeq}: ${result.resent.length}`),
    });
  });
  after(async () => {
    for (const c of running) await c.stop();
    if (served && served.child.exitCode === null) {
      const exited = new Promise((resolve) => served?.child.once('exit', resolve));
      served.child.kill('SIGTERM');
      await exited;
    }
    if (!producerClosed) await producer?.close();
    await relay.stop();
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  });

  /** A topic of one partition for one test, so each group reads only its own test's records. */
  async function newTopic(): Promise<string> {
    const topic = uniqueName('orders');
    await transport.ensureTopic(topic, 1);
    return topic;
  }

  /** Commits `count` messages of `key` (the outbox numbers them on from the key's last) and waits until relayed. */
  async function produce(topic: string, key: string, count: number): Promise<void> {
    await store.transaction(async (tx) => {
      for (let i = 0; i < count; i++) await outbox.enqueue(tx, { topic, key, type: 'order.placed', payload: { key } });
    });
    await waitFor(async () => (await store.db.query(`select 1 from "${schema}".outbox where state <> 1`)).rows.length === 0, {
      what: 'relayed',
    });
  }

  /** Deletes the broker's record of (key, seq): the table log's row. */
  async function loseRecord(topic: string, key: string, seq: number): Promise<void> {
    const { rows } = await store.db.query(
      `delete from "${schema}".log_record where topic = $1 and msg_key = $2 and headers ->> 'zl-seq' = $3 returning 1`,
      [topic, key, String(seq)],
    );
    assert.equal(rows.length, 1);
  }

  function consumer(groupId: string, topic: string, options: { autoRepair?: boolean; listen?: boolean } = {}) {
    const c = createConsumer({
      store,
      transport,
      groupId,
      topics: [topic],
      commitIntervalMs: 50,
      tracing: false,
      control: { ...control, autoRepair: options.autoRepair ?? false, listen: options.listen ?? false },
    });
    c.handle('order.placed', async (m, { tx }) => {
      await tx.query(`insert into "${schema}".effect (message_id, msg_key, seq) values ($1, $2, $3)`, [m.id, m.key, m.seq]);
    });
    running.push(c);
    return c;
  }

  const applied = async (key: string) =>
    (await store.db.query(`select seq from "${schema}".effect where msg_key = $1 order by seq`, [key])).rows.map((r) => Number(r.seq));

  test('a consumer restarted across a gap still reports it (the baseline is the stored mark)', async () => {
    const group = uniqueName('g');
    const topic = await newTopic();
    const first = consumer(group, topic);
    await first.start();
    await produce(topic, 'a', 3);
    await waitFor(async () => (await applied('a')).length === 3, { what: 'a 1..3 applied' });
    await first.stop();

    await produce(topic, 'a', 3);
    await loseRecord(topic, 'a', 4);
    const second = consumer(group, topic);
    const inMemory: unknown[] = [];
    const alarms: SequenceGap[] = [];
    second.on('sequence-gap', (e) => inMemory.push(e));
    second.on('sequence-gap-alarm', (g) => alarms.push(g));
    await second.start();
    await waitFor(() => alarms.length > 0, { what: 'the gap alarm' });
    assert.deepEqual(await applied('a'), [1, 2, 3, 5, 6]);
    assert.deepEqual(
      alarms.map((g) => [g.key, g.fromSeq, g.toSeq, g.tail]),
      [['a', 4, 4, false]],
    );
    assert.equal(inMemory.length, 0, 'the in-memory detector, starting from the first record it sees, misses it');
    const trail = await store.db.query(
      `select kind, expected::int, received::int, missing::int from "${schema}".sequence_alarm where consumer_group = $1`,
      [group],
    );
    assert.deepEqual(trail.rows, [{ kind: 'gap', expected: 4, received: 5, missing: 1 }]);
    assert.equal((await second.metrics()).zeroloss_consumer_sequence_gap_alarms_total, 1);
    const [summary] = await store.sequences.gapSummary([group]);
    assert.deepEqual(
      { ...summary, oldest: undefined },
      { groupId: group, open: 1, alarmed: 1, tail: 0, missing: 1, oldest: undefined, repairRequests: 0 },
    );
    assert.equal(resendLog.filter((l) => l.startsWith(group)).length, 0, 'no repair without autoRepair');
    await second.stop();
    const cli = await zerolossJson<{ sequenceGaps: Array<{ groupId: string; open: number; alarmed: number; missing: number }> }>([
      'status',
      '--pg',
      PG_URL,
      '--schema',
      schema,
      '--group',
      group,
    ]);
    assert.equal(cli.code, 1, 'an alarmed gap makes status exit 1');
    assert.deepEqual(
      cli.json.sequenceGaps.map((g) => [g.groupId, g.open, g.alarmed, g.missing]),
      [[group, 1, 1, 1]],
    );
  });

  test('a deleted broker record is found, resent through the audited path and applied once; bad control records are skipped', async () => {
    const group = uniqueName('g');
    const topic = await newTopic();
    // A record on the control topic that is not a control message: skipped and counted, the listener goes on.
    const bad = encodeControl({ kind: 'receipts', group, at: new Date().toISOString(), applied: [] });
    await transport.publisher.publish([{ ...bad, value: Buffer.from('{not json') }]);
    await produce(topic, 'b', 4);
    await loseRecord(topic, 'b', 2);
    const c = consumer(group, topic, { autoRepair: true });
    const requests: SequenceGap[] = [];
    c.on('sequence-repair-requested', (g) => requests.push(g));
    await c.start();
    await waitFor(async () => (await applied('b')).length === 4, { what: 'b 2 resent and applied', timeoutMs: 15_000 });
    assert.deepEqual(await applied('b'), [1, 2, 3, 4]);
    assert.ok(requests.length >= 1 && requests.every((g) => g.fromSeq === 2 && g.toSeq === 2));
    const { rows } = await store.db.query(`select message_id from "${schema}".outbox where msg_key = 'b' and key_seq = 2`);
    const id = rows[0]?.message_id;
    const inbox = await store.db.query(`select count(*)::int as n from "${schema}".inbox where consumer_group = $1 and message_id = $2`, [
      group,
      id,
    ]);
    assert.equal(inbox.rows[0]?.n, 1, 'applied once');
    const audit = await store.db.query(`select actor from "${schema}".operation_audit where action = 'outbox.resend' and message_id = $1`, [
      id,
    ]);
    assert.ok(audit.rows.length >= 1 && audit.rows.every((r) => r.actor === `control:${group}`));
    await waitFor(async () => (await store.sequences.openGaps(group, 10)).length === 0, { what: 'the gap healed' });
    const healed = await store.db.query(
      `select missing_from::int, healed_at is not null as healed from "${schema}".sequence_gap where consumer_group = $1`,
      [group],
    );
    assert.deepEqual(healed.rows, [{ missing_from: 2, healed: true }]);
    const invalid = (await registry.getSingleMetricAsString('zeroloss_control_invalid_total')).match(/side="producer"} (\d+)/);
    assert.equal(Number(invalid?.[1]), 1, 'the bad record was counted once by the producing side');
  });

  test('zeroloss serve publishes the producer marks: a loss at the tail of a key is found and repaired', async () => {
    // serve takes over the producing side (same listener group): the in-process one leaves first.
    await producer.close();
    producerClosed = true;
    const group = uniqueName('g');
    const topic = await newTopic();
    await produce(topic, 't', 2);
    await produce(topic, 'z', 1);
    await loseRecord(topic, 't', 2);
    const c = consumer(group, topic, { autoRepair: true, listen: true });
    const alarms: SequenceGap[] = [];
    c.on('sequence-gap-alarm', (g) => alarms.push(g));
    await c.start();
    await waitFor(async () => (await applied('z')).length === 1, { what: 'z applied: the consumer read past t 2' });
    assert.deepEqual(await applied('t'), [1], 'no later record of t reveals the loss');
    served = await serve();
    await waitFor(async () => (await applied('t')).length === 2, { what: 't 2 found at the tail, resent and applied', timeoutMs: 15_000 });
    assert.deepEqual(
      alarms.map((g) => [g.key, g.fromSeq, g.toSeq, g.tail]),
      [['t', 2, 2, true]],
    );
    await waitFor(async () => (await store.sequences.openGaps(group, 10)).length === 0, { what: 'the tail gap healed' });
    await waitFor(() => served?.output().includes(`resend request of ${group}: 1 resent`), { what: "serve's resend log line" });
  });
});

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** `zeroloss serve` on the test's schema and table log, producer marks every 200 ms; its stderr kept. */
async function spawnServe(schema: string): Promise<{ child: ChildProcess; output: () => string }> {
  const port = await freePort();
  const args = ['serve', '--pg', PG_URL, '--schema', schema, '--table-log', '--http-host', '127.0.0.1', '--http-port', String(port)];
  const child = spawn(process.execPath, [MAIN, ...args, '--marks-every', '200ms', '--reconcile-every', 'off', '--nightly-hour', 'off'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ZEROLOSS_LOG_FORMAT: 'json' },
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}
