import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresBacklogStore } from '../../../src/adapters/postgres/postgres-backlog-store.ts';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import { DEFERRED_HEADER } from '../../../src/consumer/middleware/defer.ts';
import { forwardBacklog } from '../../../src/operations/backlog.ts';
import { BacklogPolicy } from '../../../src/operations/backlog-policy.ts';
import { DegradeSwitches, setDegrade } from '../../../src/operations/degrade-switches.ts';
import { status } from '../../../src/operations/status.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema } from '../../helpers/pg.ts';
import { FAST_GROUP } from '../../helpers/table-log.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/** O10: degrade switches, the backlog policy, deferring non-core types, and the record of forwarded backlogs. */
describe('degrading at peak', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let transport: ReturnType<typeof tableLog>;
  let ops: PostgresOperationsStore;
  let backlog: PostgresBacklogStore;
  const consumers: Consumer[] = [];
  before(async () => {
    env = await freshSchema('zldeg');
    await createEffectTable(env.db, env.schema);
    transport = tableLog({ db: env.db, schema: env.schema }, { subscriber: FAST_GROUP });
    ops = new PostgresOperationsStore(env.db, { schema: env.schema });
    backlog = new PostgresBacklogStore(env.db, { schema: env.schema });
  });
  after(async () => {
    await Promise.all(consumers.map((c) => c.stop()));
    await env.cleanup();
  });
  const cli = (args: string[]) => zerolossJson<unknown>([...args, '--pg', PG_URL, '--schema', env.schema]);
  const audit = async (subject: string) =>
    (
      await env.pool.query(`select actor, action, reason, details from "${env.schema}".operation_audit where subject = $1 order by id`, [
        subject,
      ])
    ).rows as Array<{ actor: string; action: string; reason: string | null; details: Record<string, unknown> }>;
  const effects = async (type: string) =>
    (
      await env.pool.query(`select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect where type = $1`, [
        type,
      ])
    ).rows[0] as { n: number; d: number };
  const consume = async (group: string, topics: string[], options: { defer?: Parameters<typeof testConsumer>[0]['defer'] } = {}) => {
    const c = testConsumer({
      subscriber: transport.subscriber,
      publisher: transport.publisher,
      db: env.db,
      schema: env.schema,
      config: { groupId: group, topics, commitIntervalMs: 50 },
      defer: options.defer,
    });
    for (const type of ['order.paid', 'points.bonus', 'credit']) {
      c.handle<{ n: number }>(type, async (m, ctx) =>
        insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
      );
    }
    const seen = { duplicates: 0, processed: 0 };
    c.on('processed', (e) => {
      if (e.outcome === 'duplicate') seen.duplicates++;
      else seen.processed++;
    });
    consumers.push(c);
    await c.start();
    return { consumer: c, seen };
  };

  test('a switch set through the CLI is audited, listed, and seen by the cached reader within a refresh', async () => {
    const reader = new DegradeSwitches(backlog, { refreshMs: 50 });
    await reader.start();
    try {
      assert.equal(reader.degraded('risk-check'), false);
      const on = await cli(['backlog', 'degrade', 'risk-check', 'on', '--reason', 'peak', '--actor', 'ann']);
      assert.equal(on.code, 0, on.stderr);
      await waitFor(() => reader.degraded('risk-check'), { what: 'the reader sees the switch on' });
      const again = await setDegrade(backlog, 'risk-check', true, { actor: 'ann' });
      assert.equal(again.changed, false, 'setting a switch to what it is changes nothing');
      const listed = await backlog.switches();
      assert.deepEqual(
        listed.map((s) => [s.name, s.on, s.by, s.reason]),
        [['risk-check', true, 'ann', 'peak']],
      );
      await setDegrade(backlog, 'risk-check', false, { actor: 'ann', reason: 'peak over' });
      await waitFor(() => !reader.degraded('risk-check'), { what: 'the reader sees the switch off' });
      assert.deepEqual(
        (await audit('switch:risk-check')).map((a) => [a.actor, a.action, a.reason]),
        [
          ['ann', 'backlog.degrade.on', 'peak'],
          ['ann', 'backlog.degrade.off', 'peak over'],
        ],
        'one audit row per change, none for the repeat',
      );
      await assert.rejects(setDegrade(backlog, 'Bad Name', true), { code: 'ZL_INVALID_CONFIG' });
    } finally {
      reader.stop();
    }
  });

  test('the policy degrades when the lag reaches the threshold and restores only below the lower one, audited with the lag', async () => {
    const topic = uniqueId('orders');
    const group = uniqueId('g-policy');
    await transport.ensureTopic(topic, 1);
    for (const o of await transport.publisher.publish(
      Array.from({ length: 20 }, (_, n) => zlRecord({ topic, key: `k${n}`, type: 'order.paid', payload: { n } })),
    ))
      assert.ok(o.ok);
    const inbox = new PostgresInboxStore(env.db, { schema: env.schema });
    const at = (offset: number) => inbox.storeOffset(env.db, group, topic, 0, BigInt(offset));
    const policy = new BacklogPolicy(
      { broker: transport.inspector, admin: transport.admin, store: ops, switches: backlog },
      {
        group,
        degradeAt: 10,
        restoreAt: 2,
        switches: ['non-core'],
        diverts: [{ topic, types: ['points.bonus'], target: `${topic}.standby` }],
      },
    );
    // A person turned another switch on by hand: the policy never turns it off.
    await setDegrade(backlog, 'verbose-logging', true, { actor: 'ann' });

    await at(5);
    // Two checks at once (a slow check overlapping the next tick, or two serve processes): one change, audited once.
    const twice = await Promise.all([policy.check(), policy.check()]);
    assert.deepEqual(twice.map((c) => c.changed).sort(), ['degraded', undefined]);
    assert.deepEqual(await policy.check(), { lag: 15, active: true, changed: undefined });
    assert.equal((await backlog.switches()).find((s) => s.name === 'non-core')?.on, true);
    assert.deepEqual(
      (await ops.divertRules()).map((r) => [r.topic, r.type, r.target, r.createdBy]),
      [[topic, 'points.bonus', `${topic}.standby`, 'backlog-policy']],
    );
    const now = await status(
      { store: ops, degrade: { switches: () => backlog.switches(), divertRules: () => ops.divertRules() } },
      { groups: [group] },
    );
    assert.deepEqual(now.degraded.switches.map((s) => s.name).sort(), ['non-core', 'verbose-logging'], 'status shows what is degraded');
    assert.deepEqual(
      now.degraded.diverts.map((d) => d.type),
      ['points.bonus'],
    );

    await at(15);
    assert.deepEqual(await policy.check(), { lag: 5, active: true, changed: undefined }, 'between the thresholds nothing flips');
    await at(19);
    assert.deepEqual(await policy.check(), { lag: 1, active: false, changed: 'restored' });
    assert.equal((await backlog.switches()).find((s) => s.name === 'non-core')?.on, false);
    assert.equal((await backlog.switches()).find((s) => s.name === 'verbose-logging')?.on, true, "a person's switch stays on");
    assert.deepEqual(await ops.divertRules(), []);

    const changes = (await audit(`group:${group}`)).map((a) => [a.action, a.details.lag]);
    assert.deepEqual(changes, [
      ['backlog.policy.degrade', 15],
      ['backlog.policy.restore', 1],
    ]);
    assert.deepEqual(
      (await audit('switch:non-core')).map((a) => [a.actor, a.action, a.reason]),
      [
        ['backlog-policy', 'backlog.degrade.on', `group ${group} lag 15 >= 10`],
        ['backlog-policy', 'backlog.degrade.off', `group ${group} lag 1 <= 2`],
      ],
    );
  });

  test('a non-core type is deferred to its standby topic while its switch is on, then drained: each applied once', async () => {
    const topic = uniqueId('shop');
    const standby = `${topic}.standby`;
    const group = uniqueId('g-defer');
    await transport.ensureTopic(topic, 2);
    await transport.ensureTopic(standby, 2);
    const reader = new DegradeSwitches(backlog, { refreshMs: 50 });
    await setDegrade(backlog, 'points-at-peak', true, { actor: 'ann', reason: 'peak' });
    await reader.start();
    try {
      const defer = { switches: reader, types: { 'points.bonus': { switch: 'points-at-peak', topic: standby } } };
      const { consumer, seen } = await consume(group, [topic], { defer });
      const bonus = Array.from({ length: 5 }, (_, n) => zlRecord({ topic, key: `u${n}`, type: 'points.bonus', payload: { n } }));
      const paid = Array.from({ length: 5 }, (_, n) => zlRecord({ topic, key: `u${n}`, type: 'order.paid', payload: { n } }));
      // The first bonus twice, as after a crash between its deferral and the commit.
      for (const o of await transport.publisher.publish([...bonus, ...paid, bonus[0]!])) assert.ok(o.ok);

      await waitFor(async () => (await effects('order.paid')).n === 5 && (await transport.inspector.watermarks(standby)), {
        what: 'core messages applied',
      });
      await waitFor(async () => ((await transport.inspector.watermarks(standby)) ?? []).reduce((n, m) => n + Number(m.high), 0) === 6, {
        what: 'six bonus copies on the standby topic',
      });
      assert.deepEqual(await effects('points.bonus'), { n: 0, d: 0 }, 'deferred, not applied, not dropped');
      assert.equal(seen.processed, 5);
      const deferred = (await consumer.registry.getSingleMetric('zeroloss_consumer_deferred_total')?.get())?.values ?? [];
      assert.equal(deferred.find((v) => v.labels.type === 'points.bonus')?.value, 6, 'deferred records counted');
      const copies = [];
      for await (const r of transport.inspector.read(
        ((await transport.inspector.watermarks(standby)) ?? []).map((m) => ({
          topic: standby,
          partition: m.partition,
          from: 0n,
          to: m.high,
        })),
      ))
        copies.push(r);
      assert.ok(copies.every((r) => r.headers[DEFERRED_HEADER]?.startsWith(`${topic}/`)));
      await consumer.stop();

      // Restored: the group drains the standby topic beside its main one.
      await setDegrade(backlog, 'points-at-peak', false, { actor: 'ann' });
      await reader.refresh();
      const drain = await consume(group, [topic, standby], { defer });
      await waitFor(async () => (await effects('points.bonus')).n === 5 && drain.seen.duplicates === 1, {
        what: 'the deferred messages applied',
      });
      assert.deepEqual(await effects('points.bonus'), { n: 5, d: 5 }, 'each deferred message applied once');
      assert.deepEqual(await effects('order.paid'), { n: 5, d: 5 });
    } finally {
      reader.stop();
    }
  });

  test('a forward is recorded, and forwarded again from the record after the target lost it: each applied once', async () => {
    const from = uniqueId('ledger');
    const to = `${from}.wide`;
    const group = uniqueId('g-fwd');
    await transport.ensureTopic(from, 1);
    const records = Array.from({ length: 10 }, (_, n) => zlRecord({ topic: from, key: `k${n % 3}`, type: 'credit', payload: { n } }));
    for (const o of await transport.publisher.publish(records)) assert.ok(o.ok);

    const first = await forwardBacklog(
      { broker: transport.inspector, admin: transport.admin, publisher: transport.publisher, log: backlog, audit: (e) => ops.audit(e) },
      { from, to, group, partitions: 2 },
      { actor: 'ann', reason: 'peak' },
    );
    assert.equal(first.forwarded, 10);
    const listed = await backlog.forwardRuns(10, from);
    assert.equal(listed.length, 1);
    assert.deepEqual(
      { ...listed[0], finishedAt: listed[0]?.finishedAt !== null },
      {
        ...listed[0],
        id: first.run,
        to,
        group,
        ranges: [{ partition: 0, from: '0', to: '10' }],
        planned: 10,
        forwarded: 10,
        finishedAt: true,
        actor: 'ann',
      },
    );

    // The group applies the copy; then the target loses it.
    const one = await consume(group, [to]);
    await waitFor(async () => (await effects('credit')).n === 10, { what: 'the copy applied' });
    await one.consumer.stop();
    await env.pool.query(`delete from "${env.schema}".log_record where topic = $1`, [to]);

    const again = await cli(['backlog', 'forward', '--again', String(first.run), '--table-log', '--reason', 'target lost it']);
    assert.equal(again.code, 0, again.stderr);
    const r = again.json as { run: string; againOf: string; forwarded: number; goneAtSource: number };
    assert.deepEqual([r.againOf, r.forwarded, r.goneAtSource], [first.run, 10, 0]);
    assert.equal((await backlog.forwardRun(r.run))?.againOf, first.run, 'the repeat is recorded, naming the run it repeats');

    // The same group sees the repeat as duplicates; a group that never read the lost copy applies it once.
    const same = await consume(group, [to]);
    const fresh = await consume(uniqueId('g-fresh'), [to]);
    await waitFor(async () => same.seen.duplicates === 10 && fresh.seen.processed === 10, { what: 'the repeat consumed' });
    assert.deepEqual(await effects('credit'), { n: 20, d: 10 }, 'ten per group, each message once per group');
  });
});
