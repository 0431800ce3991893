import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { RabbitMqAdmin } from '../../../src/adapters/rabbitmq/rabbitmq-admin.ts';
import { RedisStreamsAdmin } from '../../../src/adapters/redis-streams/redis-streams-admin.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { rabbitmq } from '../../../src/entry/rabbitmq.ts';
import { redisStreams } from '../../../src/entry/redis-streams.ts';
import { reconcile, status, trace } from '../../../src/entry/operations.ts';
import { createConsumer, createOutbox, createRelay } from '../../../src/index.ts';
import type { ReconcileReport } from '../../../src/operations/reconcile.ts';
import type { Status } from '../../../src/operations/status.ts';
import type { Transport } from '../../../src/ports/backends.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const N = 12;

/** Enqueues N messages, relays and consumes them over `transport`; returns the ids, the group and the window. */
async function pipeline(store: ReturnType<typeof postgres>, transport: Transport, topic: string) {
  await store.migrate();
  await store.db.query(`create table "${store.schema}".effect (id text primary key)`);
  await transport.ensureTopic(topic, 3);
  const window = { from: new Date(Date.now() - 1_000), to: new Date() };
  const outbox = createOutbox({ store, producerId: 'ops-test' });
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    await store.transaction(async (tx) => {
      ids.push((await outbox.enqueue(tx, { topic, key: `k${i % 5}`, type: 'thing.done', payload: { i } })).id);
    });
  }
  window.to = new Date(Date.now() + 1_000);
  const groupId = uniqueName('g');
  const relay = createRelay({ store, transport });
  const consumer = createConsumer({ store, transport, groupId, topics: [topic] });
  consumer.handle<{ i: number }>('thing.done', async (message, { tx }) => {
    await tx.query(`insert into "${store.schema}".effect (id) values ($1)`, [message.id]);
  });
  await relay.start();
  await consumer.start();
  try {
    const applied = async () => (await store.db.query<{ n: number }>(`select count(*)::int as n from "${store.schema}".effect`)).rows[0]!.n;
    await waitFor(async () => (await applied()) === N, { what: 'every message applied', timeoutMs: 20_000 });
  } finally {
    await consumer.stop();
    await relay.stop();
  }
  return { ids, groupId, window };
}

test('Redis Streams: reconcile, trace and status read the streams with XRANGE', async () => {
  const store = postgres(PG_URL, { schema: uniqueName('zlrso') });
  const prefix = uniqueName('zlops');
  const transport = redisStreams(REDIS_URL, { prefix, subscriber: { pollIntervalMs: 100 } });
  const topic = 'orders';
  try {
    const { ids, groupId, window } = await pipeline(store, transport, topic);
    const deps = { store: store.operations, broker: transport.inspector };

    const report = await waitFor(
      async () => {
        const r = await reconcile(deps, window, { groups: [groupId], dryRun: true });
        return r.verdict === 'clean' ? r : undefined;
      },
      { what: 'a clean reconcile', timeoutMs: 15_000 },
    );
    assert.deepEqual(report.brokerStage, { read: true });
    assert.equal(report.counts.committed, N);
    assert.equal(report.counts.onBroker, N);
    assert.equal(report.counts.brokerCopies, N);
    assert.equal(report.counts.missingOnBroker, 0);
    assert.equal(report.groups[0]?.applied, N);
    assert.deepEqual(report.scan.incomplete, []);

    const t = await trace(deps, ids[3]!);
    assert.equal(t.broker?.recorded?.check, 'found');
    assert.equal(t.broker?.copies.length, 1);
    assert.ok(
      t.steps.some((s) => s.stage === 'broker'),
      'the trail passes the broker',
    );
    assert.equal(t.stop.stage, 'complete');

    const s = await status(deps, { groups: [groupId] });
    const group = s.groups.find((g) => g.group === groupId);
    assert.deepEqual(
      group?.partitions.map((p) => p.partition),
      [0, 1, 2],
    );
    assert.equal(
      group?.partitions.reduce((n, p) => n + BigInt(p.end), 0n),
      BigInt(N),
    );
    assert.ok(
      group?.partitions.every((p) => p.lag === '0'),
      JSON.stringify(group?.partitions),
    );

    // The same from the command line, with the broker named by --redis-streams and --redis-prefix.
    const cli = ['--pg', PG_URL, '--schema', store.schema, '--redis-streams', REDIS_URL, '--redis-prefix', prefix];
    const r = await zerolossJson<ReconcileReport>([
      'reconcile',
      ...cli,
      '--since',
      window.from.toISOString(),
      '--until',
      window.to.toISOString(),
      '--group',
      groupId,
      '--dry-run',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.counts.onBroker, N);
    const st = await zerolossJson<Status>(['status', ...cli, '--group', groupId]);
    assert.equal(st.json.groups[0]?.partitions.length, 3);
  } finally {
    await transport.close();
    const admin = new RedisStreamsAdmin({ url: REDIS_URL, prefix });
    await admin.deleteTopic(topic).catch(() => {});
    await admin.close();
    await store.db.query(`drop schema if exists "${store.schema}" cascade`).catch(() => {});
    await store.close();
  }
});

test('RabbitMQ: reconcile, trace and status read the partition streams without consuming', async () => {
  const store = postgres(PG_URL, { schema: uniqueName('zlrmo') });
  const transport = rabbitmq(RABBITMQ_URL);
  const topic = `zl-it-${randomBytes(4).toString('hex')}-ops`;
  let groupId: string | undefined;
  try {
    const run = await pipeline(store, transport, topic);
    groupId = run.groupId;
    const deps = { store: store.operations, broker: transport.inspector };
    const report = await reconcile(deps, run.window, { groups: [groupId], dryRun: true });
    assert.deepEqual(report.brokerStage, { read: true });
    assert.equal(report.counts.committed, N);
    assert.equal(report.counts.onBroker, N);
    assert.equal(report.counts.brokerCopies, N);
    assert.equal(report.counts.missingOnBroker, 0);
    assert.equal(report.groups[0]?.applied, N);
    assert.deepEqual(report.scan.incomplete, []);
    assert.equal(report.verdict, 'clean');

    const t = await trace(deps, run.ids[3]!);
    assert.equal(t.broker?.recorded?.check, 'found');
    assert.equal(t.broker?.copies.length, 1);
    assert.equal(t.stop.stage, 'complete');

    // Lag per partition: the group's commits read from its offset queues, the ends from the streams.
    const s = await status(deps, { groups: [groupId] });
    const group = s.groups.find((g) => g.group === groupId);
    assert.deepEqual(
      group?.partitions.map((p) => p.partition),
      [0, 1, 2],
    );
    assert.equal(
      group?.partitions.reduce((n, p) => n + BigInt(p.end), 0n),
      BigInt(N),
    );
    assert.ok(
      group?.partitions.every((p) => p.lag === '0'),
      JSON.stringify(group?.partitions),
    );
    const committed = await transport.inspector.committedOffsets(groupId);
    assert.equal(
      committed.reduce((n, c) => n + c.offset, 0n),
      BigInt(N),
      'the consumer committed every partition to its end',
    );

    // The same from the command line, with the broker named by --rabbitmq.
    const cli = ['--pg', PG_URL, '--schema', store.schema, '--rabbitmq', RABBITMQ_URL];
    const r = await zerolossJson<ReconcileReport>([
      'reconcile',
      ...cli,
      '--since',
      run.window.from.toISOString(),
      '--until',
      run.window.to.toISOString(),
      '--group',
      groupId,
      '--dry-run',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.counts.onBroker, N);
    const js = await zerolossJson<Status & { brokerNotRead?: string }>(['status', ...cli, '--group', groupId]);
    assert.equal(js.code, 0, js.stderr);
    assert.equal(js.json.brokerNotRead, undefined, 'the broker was read');
    assert.deepEqual(
      js.json.groups[0]?.partitions.map((p) => p.lag),
      ['0', '0', '0'],
    );
  } finally {
    await transport.close();
    const admin = new RabbitMqAdmin({ url: RABBITMQ_URL });
    await admin.deleteTopic(topic).catch(() => {});
    if (groupId) await admin.deleteGroupOffsets(groupId, topic, 3).catch(() => {});
    await admin.close();
    await store.db.query(`drop schema if exists "${store.schema}" cascade`).catch(() => {});
    await store.close();
  }
});
