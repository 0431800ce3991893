import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { operationsSql } from '../../../src/adapters/postgres/operations-sql.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { quoteIdent } from '../../../src/core/identifier.ts';
import { SeriesRecorder } from '../../../src/dashboard/series-recorder.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { freshSchema, inTransaction } from '../../helpers/pg.ts';
import { recordingDatabase } from '../../helpers/recording-database.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * The metrics collector (and the dashboard's plots) read what changed since their last round. Transition and
 * alarm ids come from a sequence taken at insert time, and an inbox row carries its transaction's start time,
 * so a row can become visible after rows with higher ids (or later times) were read: the transaction that
 * took id 10 commits after the one that took 11. Here that order is made by hand, with a transaction held
 * open across rounds: the late row must be counted, and only once.
 */
describe('the collector counts rows that commit out of id or time order, once', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let s: string;
  let held: pg.PoolClient | undefined;

  beforeEach(async () => {
    env = await freshSchema('zlcco');
    s = `"${env.schema}"`;
  });
  afterEach(async () => {
    await held?.query('rollback').catch(() => {});
    held?.release();
    held = undefined;
    await env.cleanup();
  });

  /** A transaction left open on its own connection, until the test commits or rolls it back. */
  const hold = async () => {
    held = await env.pool.connect();
    await held.query('begin');
    return held;
  };
  const enqueue = async (n: number) => {
    const outbox = testOutbox({ schema: env.schema });
    return inTransaction(env.pool, async (tx) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await outbox.enqueue(tx, { topic: 't', key: `k${i}`, type: 'x', payload: i })).id);
      return ids;
    });
  };
  const sendTransition = `insert into %s.outbox_transition (message_id, from_state, to_state, attempt, actor) values ($1, 0, 1, 1, 'r') returning id::text`;
  const insertTransition = async (db: pg.ClientBase | pg.Pool, messageId: string) =>
    String((await db.query(sendTransition.replace('%s', s), [messageId])).rows[0].id);
  const insertAlarm = async (db: pg.ClientBase | pg.Pool, group: string) =>
    String(
      (
        await db.query(
          `insert into ${s}.sequence_alarm (consumer_group, kind, topic, msg_partition, producer_id, msg_key, expected, received, missing)
           values ($1, 'gap', 't', 0, 'p', 'k', 1, 3, 2) returning id::text`,
          [group],
        )
      ).rows[0].id,
    );
  const insertInbox = (db: pg.ClientBase | pg.Pool, group: string, key: string) =>
    db.query(
      `insert into ${s}.inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset) values ($1, $2, $2, 't', 0, 0)`,
      [group, key],
    );

  /** The value of one series in the registry's text, 0 when absent. */
  const series = async (metrics: ReturnType<typeof createOpsMetrics>, line: string) => {
    const text = await metrics.registry.metrics();
    const found = text.split('\n').find((l) => l.startsWith(`${line} `));
    return found ? Number(found.slice(line.length + 1)) : 0;
  };

  test('a transition that took the lower id and committed last; an alarm likewise; an effect whose transaction outlived a round', async () => {
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store, metrics }, { commitDelayMs: 0, groups: ['g'] });
    const [a, b] = await enqueue(2);
    assert.ok(a && b);
    await collector.collect(); // counting starts here

    const sent = () => series(metrics, 'zeroloss_outbox_transitions_total{to="sent",kind="first"}');
    const acks = () => series(metrics, 'zeroloss_outbox_commit_to_ack_seconds_count{kind="first"}');
    const alarms = () => series(metrics, 'zeroloss_sequence_alarms_total{group="g",kind="gap"}');
    const applied = () => series(metrics, 'zeroloss_applied_total{group="g"}');

    const early = await hold();
    const low = await insertTransition(early, a);
    const lowAlarm = await insertAlarm(early, 'g');
    await insertInbox(early, 'g', 'late');
    const high = await insertTransition(env.pool, b);
    const highAlarm = await insertAlarm(env.pool, 'g');
    assert.ok(BigInt(low) < BigInt(high) && BigInt(lowAlarm) < BigInt(highAlarm), 'the open transaction holds the lower ids');

    await collector.collect(); // reads past the open transaction's ids
    assert.deepEqual([await sent(), await alarms(), await applied()], [1, 1, 0]);
    await early.query('commit');

    await waitFor(
      async () => {
        await collector.collect();
        const counts = { sent: await sent(), alarms: await alarms(), applied: await applied() };
        if (counts.sent === 2 && counts.alarms === 2 && counts.applied === 1) return true;
        throw new Error(JSON.stringify(counts));
      },
      { timeoutMs: 20_000, what: 'the late transition, alarm and effect counted' },
    );
    // Later rounds (the gaps settle once no transaction that could fill them runs) count nothing twice.
    await insertTransition(env.pool, a);
    await waitFor(
      async () => {
        await collector.collect();
        return (await sent()) === 3;
      },
      { timeoutMs: 20_000, what: 'a later transition counted' },
    );
    for (let i = 0; i < 3; i++) await collector.collect();
    assert.deepEqual([await sent(), await acks(), await alarms(), await applied()], [3, 3, 2, 1]);
  });

  test("the dashboard's plots count the late transition and effect too", async () => {
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const recorder = new SeriesRecorder({ store }, { everyMs: 1_000, historyMs: 600_000, commitDelayMs: 0, groups: ['g'] });
    const [a, b] = await enqueue(2);
    assert.ok(a && b);
    await recorder.sample(); // places the cursors

    const early = await hold();
    await insertTransition(early, a);
    await insertInbox(early, 'g', 'late');
    await insertTransition(env.pool, b);
    await recorder.sample();
    assert.ok((recorder.points().at(-1)?.sentPerSecond ?? 0) > 0, 'the committed transition is counted');
    await early.query('commit');

    const before = recorder.points().length;
    await waitFor(
      async () => {
        await recorder.sample();
        const later = recorder.points().slice(before);
        if (later.some((p) => p.sentPerSecond > 0) && later.some((p) => p.appliedPerSecond > 0)) return true;
        throw new Error(JSON.stringify(later.slice(-3)));
      },
      { timeoutMs: 20_000, what: 'a point with the late transition and effect' },
    );
    const counted = recorder.points().length;
    for (let i = 0; i < 3; i++) await recorder.sample();
    assert.deepEqual(
      recorder
        .points()
        .slice(counted)
        .map((p) => [p.sentPerSecond, p.appliedPerSecond]),
      [
        [0, 0],
        [0, 0],
        [0, 0],
      ],
      'nothing counted twice',
    );
  });

  test('a gap settles once no transaction writing the table is left: a rolled-back insert, not an open transaction elsewhere', async () => {
    // The store's statements as it runs them: the gaps the collector asks for are the parameters.
    const { db, ran } = recordingDatabase(env.db);
    const store = new PostgresOperationsStore(db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store, metrics }, { commitDelayMs: 0, groups: ['g'] });
    const sql = operationsSql(quoteIdent(env.schema, 'schema'));
    /** One round; the transition gap ids it looked up. */
    const round = async () => {
      ran.length = 0;
      await collector.collect();
      const read = ran.find((r) => r.sql === sql.transitionsSince);
      assert.ok(read, 'the round read the transitions');
      return read.params[2] as string[];
    };
    const [a, b] = await enqueue(2);
    assert.ok(a && b);
    await round();

    // A long transaction that writes elsewhere (the outbox) stays open throughout.
    const elsewhere = await hold();
    await testOutbox({ schema: env.schema }).enqueue(elsewhere, { topic: 't', key: 'x', type: 'x', payload: 0 });

    const rolledBack = await env.pool.connect();
    let lost: string;
    try {
      await rolledBack.query('begin');
      lost = await insertTransition(rolledBack, a);
      await rolledBack.query('rollback');
    } finally {
      rolledBack.release();
    }
    const kept = await insertTransition(env.pool, b);
    await insertInbox(env.pool, 'g', 'now');
    assert.deepEqual(await round(), [], 'no gap known before the read that finds it');
    assert.deepEqual(await round(), [lost], 'the skipped id is looked for again');
    await waitFor(async () => (await round()).length === 0, { timeoutMs: 20_000, what: 'the rolled-back id settled' });
    await waitFor(
      async () => {
        await collector.collect();
        return (await series(metrics, 'zeroloss_applied_total{group="g"}')) === 1;
      },
      { timeoutMs: 20_000, what: 'the effect counted while a transaction that writes no inbox row stays open' },
    );

    // A transaction that has inserted a transition holds its gap open however many rounds pass.
    const writer = await env.pool.connect();
    try {
      await writer.query('begin');
      const late = await insertTransition(writer, a);
      const after = await insertTransition(env.pool, b);
      assert.ok(BigInt(kept) < BigInt(late) && BigInt(late) < BigInt(after));
      await round();
      for (let i = 0; i < 5; i++) assert.deepEqual(await round(), [late], "the open writer's id is still looked for");
      await writer.query('commit');
    } finally {
      writer.release();
    }
    await waitFor(async () => (await round()).length === 0, { timeoutMs: 20_000, what: 'the late id found' });
    assert.equal(await series(metrics, 'zeroloss_outbox_transitions_total{to="sent",kind="first"}'), 3);
    await elsewhere.query('rollback');
  });

  test('the reads above the cursor and of its gap ids read the primary key on a large table', async () => {
    const sql = operationsSql(quoteIdent(env.schema, 'schema'));
    const rows = 250_000;
    // Every 50th id missing: 5,000 gaps, what one read looks up at most.
    await env.pool.query(
      `insert into ${s}.outbox_transition (id, message_id, from_state, to_state, attempt, actor)
       select g, 'm' || g, 0, 1, 1, 'r' from generate_series(1, $1::int) g where g % 50 <> 0`,
      [rows],
    );
    await env.pool.query(
      `insert into ${s}.sequence_alarm (id, consumer_group, kind, topic, msg_partition, producer_id, msg_key, expected, received, missing)
       select g, 'g', 'gap', 't', 0, 'p', 'k', 1, 3, 2 from generate_series(1, $1::int) g where g % 50 <> 0`,
      [rows],
    );
    await env.pool.query(`vacuum analyze ${s}.outbox_transition`);
    await env.pool.query(`vacuum analyze ${s}.sequence_alarm`);
    const holes = Array.from({ length: rows / 50 }, (_, i) => String((i + 1) * 50));
    const after = String(rows - 1_000);

    const scans = async (statement: string, params: unknown[]) => {
      const { rows: plan } = await env.pool.query(`explain (format json) ${statement}`, params);
      const found: string[] = [];
      const walk = (node: Record<string, unknown>): void => {
        const table = node['Relation Name'];
        if ((table === 'outbox_transition' || table === 'sequence_alarm') && !String(node['Node Type']).startsWith('Index'))
          found.push(`${node['Node Type']} on ${table}`);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
      };
      walk((plan[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]?.Plan ?? {});
      return found;
    };
    assert.deepEqual(await scans(sql.transitionsSince, [after, 5_000, holes]), []);
    assert.deepEqual(await scans(sql.transitionsSince, [after, 5_000, []]), []);
    assert.deepEqual(await scans(sql.alarmsSince, [after, 5_000, holes]), []);
    assert.deepEqual(await scans(sql.alarmsSince, [after, 5_000, []]), []);

    // And what they return: the rows above the cursor, none in the (empty) gaps.
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    assert.equal((await store.transitionsSince(after, 5_000, holes)).length, 1_000 - 1_000 / 50);
    assert.equal((await store.alarmsSince(after, 5_000, holes)).length, 1_000 - 1_000 / 50);
  });

  test('a lock that writes nothing (VACUUM, SELECT FOR UPDATE) holds back no count', async () => {
    // Autovacuum of the inbox (ShareUpdateExclusiveLock) is routine and can run for hours; counted as a writer,
    // it held every group's applied count back until it ended (and then read the whole stalled window at once).
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store, metrics }, { commitDelayMs: 0, groups: ['g'] });
    const [a] = await enqueue(1);
    assert.ok(a);
    await collector.collect();
    const locker = await hold();
    await locker.query(`lock table ${s}.inbox in share update exclusive mode`);
    await locker.query(`lock table ${s}.outbox_transition in share update exclusive mode`);
    await locker.query(`select * from ${s}.sequence_alarm for update`);
    await insertInbox(env.pool, 'g', 'e1');
    await insertTransition(env.pool, a);
    await waitFor(
      async () => {
        await collector.collect();
        const counts = {
          applied: await series(metrics, 'zeroloss_applied_total{group="g"}'),
          sent: await series(metrics, 'zeroloss_outbox_transitions_total{to="sent",kind="first"}'),
        };
        if (counts.applied === 1 && counts.sent === 1) return true;
        throw new Error(JSON.stringify(counts));
      },
      { timeoutMs: 10_000, what: 'the effect and the transition counted while the locks are held' },
    );
  });

  test('rounds started before the last one ended count each row once', async () => {
    // serve runs a round on a timer; one that outlasts the interval (a catch-up, a slow server) overlapped the next.
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store, metrics }, { commitDelayMs: 0, groups: ['g'] });
    const ids = await enqueue(20);
    await collector.collect();
    for (const [i, id] of ids.entries()) {
      await insertTransition(env.pool, id);
      await insertInbox(env.pool, 'g', `e${i}`);
    }
    await waitFor(
      async () => {
        await Promise.all([collector.collect(), collector.collect(), collector.collect()]);
        const counts = {
          applied: await series(metrics, 'zeroloss_applied_total{group="g"}'),
          sent: await series(metrics, 'zeroloss_outbox_transitions_total{to="sent",kind="first"}'),
        };
        assert.ok(counts.applied <= 20 && counts.sent <= 20, `counted twice: ${JSON.stringify(counts)}`);
        return counts.applied === 20 && counts.sent === 20;
      },
      { timeoutMs: 10_000, what: 'every effect and transition counted' },
    );
  });
});
