import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { PostgresOutboxStore } from '../../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../../src/adapters/table-log/table-log-admin.ts';
import { TableLogInspector } from '../../../src/adapters/table-log/table-log-inspector.ts';
import { TableLogPublisher } from '../../../src/adapters/table-log/table-log-publisher.ts';
import { TableLogSubscriber } from '../../../src/adapters/table-log/table-log-subscriber.ts';
import { reconcileHelp } from '../../../src/cli/commands/reconcile.ts';
import { serveHelp } from '../../../src/cli/commands/serve.ts';
import { type ApproveResult, approveHeldRun } from '../../../src/operations/approve-held-run.ts';
import type { ZerolossError } from '../../../src/core/errors.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { reconcileOptionsSchema, type ReconcileReport } from '../../../src/operations/reconcile.ts';
import { ReconcileScheduler, reconcileScheduleSchema } from '../../../src/operations/reconcile-scheduler.ts';
import type { HeldRun } from '../../../src/ports/operations-store.ts';
import { Relay } from '../../../src/outbox/relay.ts';
import { createEffectTable, insertEffect, uniqueId } from '../../helpers/consumer-fixtures.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * O8: reconciliation repairs automatically below a threshold (1,000 by default, as in the source) and
 * escalates above it: nothing re-published, an alert metric, the 'escalated' event, a held run a person
 * lists and approves once, and the emergency-plan hook — whose failure never stops the scheduler.
 * Real Postgres and the embedded table log; the broker loses records by deleting them from the log.
 */
describe('reconcile escalation', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let store: PostgresOperationsStore;
  const conn = () => ['--pg', PG_URL, '--schema', env.schema, '--table-log'];
  before(async () => {
    env = await freshSchema('zlesc');
    store = new PostgresOperationsStore(env.db, { schema: env.schema });
    await createEffectTable(env.db, env.schema);
  });
  after(async () => {
    await env.cleanup();
  });

  /** `total` messages on a fresh topic, relayed; the first `lost` deleted from the log. Returns the lost ids. */
  async function topicWithLoss(total: number, lost: number, topic = uniqueId('esc')): Promise<{ topic: string; lostIds: string[] }> {
    await new TableLogAdmin(env.db, { schema: env.schema }).createTopic(topic, 1);
    const outbox = testOutbox({ schema: env.schema });
    for (let i = 0; i < total; i++)
      await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: `k${i}`, type: 'credit', payload: { n: i } }));
    const publisher = new TableLogPublisher(env.db, { schema: env.schema });
    assert.equal(await new Relay({ sources: new PostgresOutboxStore(env.db, { schema: env.schema }), publisher }).drain(), total);
    const { rows } = await env.pool.query(
      `delete from "${env.schema}".log_record where topic = $1 and log_offset < $2 returning headers->>'zl-id' as id`,
      [topic, lost],
    );
    return { topic, lostIds: rows.map((r) => r.id as string).sort() };
  }

  const copiesOnLog = async (topic: string) =>
    (
      await env.pool.query(
        `select headers->>'zl-id' as id, count(*)::int as n from "${env.schema}".log_record where topic = $1 group by 1`,
        [topic],
      )
    ).rows as Array<{ id: string; n: number }>;

  const scheduler = (
    topic: string,
    config: Partial<Parameters<typeof reconcileScheduleSchema.parse>[0]> & object,
    metrics = createOpsMetrics(new Registry()),
  ) => ({
    metrics,
    scheduler: new ReconcileScheduler(
      {
        store,
        broker: new TableLogInspector(env.db, { schema: env.schema }),
        publisher: new TableLogPublisher(env.db, { schema: env.schema }),
        metrics,
      },
      { recent: { everyMs: 3_600_000, windowMs: 600_000, settleMs: 0 }, nightly: false, topics: [topic], ...config },
    ),
  });

  const counter = async (metrics: ReturnType<typeof createOpsMetrics>, name: string) =>
    ((await metrics.registry.getSingleMetric(name)?.get())?.values ?? []).reduce((n, v) => n + v.value, 0);

  test('the threshold is 1,000 by default, in the library and the CLI help', () => {
    assert.equal(reconcileOptionsSchema.parse({}).maxAutoRepair, 1_000);
    assert.equal(reconcileScheduleSchema.parse({}).maxAutoRepair, 1_000);
    for (const help of [reconcileHelp, serveHelp]) assert.match(help, /escalation threshold \(default 1000\)/);
  });

  test('above the threshold: held, not repaired, counted, hook called; approved once, each message applied once', async () => {
    const { topic, lostIds } = await topicWithLoss(8, 5);
    const hooked: ReconcileReport[] = [];
    const escalated: ReconcileReport[] = [];
    const { scheduler: s, metrics } = scheduler(topic, {
      repair: true,
      maxAutoRepair: 3,
      onEscalate: (r: ReconcileReport) => void hooked.push(r),
    });
    s.on('escalated', (r) => escalated.push(r));

    const report = await s.runRecent();
    assert.deepEqual(report.held, { count: 5, limit: 3 });
    assert.equal(report.verdict, 'gaps');
    assert.match(
      report.repair?.skipped ?? '',
      new RegExp(`exceed the automatic repair limit of 3: held for approval \\(zeroloss reconcile --approve ${report.runId} `),
    );
    assert.equal(escalated.length, 1);
    assert.equal(hooked.length, 1, 'the emergency plan ran');
    assert.equal(hooked[0]?.runId, report.runId);
    assert.equal(await counter(metrics, 'zeroloss_reconcile_escalations_total'), 1);
    assert.equal(await counter(metrics, 'zeroloss_reconcile_held_reports'), 1);
    assert.equal((await copiesOnLog(topic)).length, 3, 'nothing re-published');
    const row = (await env.pool.query(`select status, held_ids from "${env.schema}".reconcile_run where id = $1`, [report.runId])).rows[0];
    assert.equal(row.status, 'held');
    assert.deepEqual([...row.held_ids].sort(), lostIds, 'every missing id kept');

    // The next run over an overlapping window finds the same loss, and one more message lost since: the
    // held five wait for the first run's approval; the new one, below the threshold, is repaired at once.
    const more = (
      await env.pool.query(`delete from "${env.schema}".log_record where topic = $1 and log_offset = 5 returning headers->>'zl-id' as id`, [
        topic,
      ])
    ).rows.map((r) => r.id as string);
    assert.equal(more.length, 1);
    const overlap = await s.runRecent();
    assert.equal(overlap.held, undefined);
    assert.equal(overlap.awaitingApproval, 5);
    assert.deepEqual(overlap.repair?.resent, more, 'only the new loss re-published, not the held ones behind the person');
    assert.equal(overlap.verdict, 'gaps', 'the held five are still missing: not "repaired"');
    assert.equal(escalated.length + hooked.length, 2, 'no second escalation');

    const held = await zerolossJson<HeldRun[]>(['reconcile', '--held', '--pg', PG_URL, '--schema', env.schema]);
    assert.equal(held.code, 0, held.stderr);
    assert.deepEqual(
      held.json.map((r) => [r.id, r.held]),
      [[report.runId, 5]],
    );
    // status names the held run and exits 1 while it waits for a person.
    const held1 = await zerolossJson<{ heldRuns: HeldRun[] }>(['status', '--table-log', '--pg', PG_URL, '--schema', env.schema, '--json']);
    assert.equal(held1.code, 1, held1.stderr);
    assert.deepEqual(
      held1.json.heldRuns.map((r) => [r.id, r.held]),
      [[report.runId, 5]],
    );

    const approved = await zerolossJson<ApproveResult>([
      'reconcile',
      ...conn(),
      '--approve',
      report.runId as string,
      '--reason',
      'broker disk lost',
      '--actor',
      'dana',
    ]);
    assert.equal(approved.code, 0, approved.stderr);
    assert.deepEqual([...approved.json.resend.resent].sort(), lostIds);
    const copies = await copiesOnLog(topic);
    assert.equal(copies.length, 8);
    assert.ok(
      copies.every((c) => c.n === 1),
      `each message once on the log: ${JSON.stringify(copies)}`,
    );

    // A second approval, as a second person would try: refused, typed, and nothing sent.
    await assert.rejects(
      approveHeldRun({ store, stores: [store], publisher: new TableLogPublisher(env.db, { schema: env.schema }) }, report.runId as string, {
        actor: 'reconcile:erin',
        reason: 'twice',
      }),
      (e: ZerolossError) => {
        assert.equal(e.code, 'ZL_RUN_NOT_HELD');
        assert.equal(e.retryable, false);
        assert.match(e.message, new RegExp(`reconcile run ${report.runId} was already approved by reconcile:dana`));
        return true;
      },
    );
    assert.equal(
      (await copiesOnLog(topic)).reduce((n, c) => n + c.n, 0),
      8,
      'the refused approval sent nothing',
    );
    assert.deepEqual(await store.heldRuns(10), []);
    const held2 = await zerolossJson<{ heldRuns: HeldRun[] }>(['status', '--table-log', '--pg', PG_URL, '--schema', env.schema, '--json']);
    assert.deepEqual(held2.json.heldRuns, [], held2.stderr);
    // serve's collector sets the gauge from the database: the approval happened in another process.
    await new OpsCollector({ store, metrics }, { commitDelayMs: 0 }).collect();
    assert.equal(await counter(metrics, 'zeroloss_reconcile_held_reports'), 0);
    const audit = await env.pool.query(
      `select actor, reason from "${env.schema}".operation_audit where action = 'reconcile.approve' and subject = $1`,
      [`reconcile_run:${report.runId}`],
    );
    assert.deepEqual(audit.rows, [{ actor: 'reconcile:dana', reason: 'broker disk lost' }]);

    // Downstream: a consumer applies each of the eight once.
    const group = uniqueId('g-esc');
    const consumer = testConsumer({
      subscriber: new TableLogSubscriber(env.db, {
        schema: env.schema,
        pollIntervalMs: 50,
        heartbeatIntervalMs: 200,
        sessionTimeoutMs: 2_000,
      }),
      db: env.db,
      schema: env.schema,
      config: { groupId: group, topics: [topic], commitIntervalMs: 50 },
    });
    consumer.handle<{ n: number }>('credit', async (m, ctx) =>
      insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
    );
    await consumer.start();
    try {
      const applied = async () =>
        (await env.pool.query(`select count(*)::int as n, count(distinct message_id)::int as d from "${env.schema}".effect`)).rows[0];
      const done = await waitFor(async () => ((await applied()).n >= 8 ? applied() : undefined), { what: 'eight effects' });
      assert.deepEqual(done, { n: 8, d: 8 });
    } finally {
      await consumer.stop();
    }
  });

  test('below the threshold: repaired at once, no escalation', async () => {
    const { topic, lostIds } = await topicWithLoss(5, 2);
    const hooked: ReconcileReport[] = [];
    const { scheduler: s, metrics } = scheduler(topic, {
      repair: true,
      maxAutoRepair: 3,
      onEscalate: (r: ReconcileReport) => void hooked.push(r),
    });
    let escalations = 0;
    s.on('escalated', () => escalations++);
    const report = await s.runRecent();
    assert.equal(report.verdict, 'repaired');
    assert.equal(report.held, undefined);
    assert.deepEqual([...(report.repair?.resent ?? [])].sort(), lostIds);
    assert.equal(escalations + hooked.length, 0);
    assert.equal(await counter(metrics, 'zeroloss_reconcile_escalations_total'), 0);
    assert.equal((await copiesOnLog(topic)).length, 5);
    const row = (await env.pool.query(`select status from "${env.schema}".reconcile_run where id = $1`, [report.runId])).rows[0];
    assert.equal(row.status, null);
  });

  test('the reconcile CLI runs --on-escalate once for the run it held; a failing hook is reported, the run stays held', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'zl-esc-'));
    try {
      const { topic, lostIds } = await topicWithLoss(4, 3);
      const out = path.join(dir, 'report.json');
      const hook = `cat > '${out}' && echo "$ZEROLOSS_RUN_ID" > '${out}.id'`;
      const r = await zerolossJson<ReconcileReport>([
        'reconcile',
        ...conn(),
        '--since',
        '10m',
        '--topic',
        topic,
        '--max-auto-repair',
        '2',
        '--on-escalate',
        hook,
        '--json',
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(r.json.held, { count: 3, limit: 2 });
      const got = JSON.parse(await readFile(out, 'utf8')) as ReconcileReport;
      assert.equal(got.runId, r.json.runId);
      assert.deepEqual([...got.missing.broker].sort(), lostIds);
      assert.equal((await readFile(`${out}.id`, 'utf8')).trim(), r.json.runId);

      const second = await topicWithLoss(3, 2);
      const failing = await zerolossJson<ReconcileReport>([
        'reconcile',
        ...conn(),
        '--since',
        '10m',
        '--topic',
        second.topic,
        '--max-auto-repair',
        '1',
        '--on-escalate',
        'echo pager down >&2; exit 4',
        '--json',
      ]);
      assert.equal(failing.code, 1);
      assert.match(
        failing.stderr,
        new RegExp(`escalation hook failed for run ${failing.json.runId}: --on-escalate command exited with 4: pager down`),
      );
      assert.ok(
        (await store.heldRuns(100)).some((h) => h.id === failing.json.runId),
        'still held',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failing or hanging hook is counted and reported; the scheduler keeps running', async () => {
    // Two losses, the second only after the first hook failed: each escalates once (a held loss is not
    // escalated again by the next runs).
    const heldBefore = (await store.heldRuns(1_000)).length;
    const { topic } = await topicWithLoss(3, 2);
    const later = uniqueId('esc');
    let calls = 0;
    const { scheduler: s, metrics } = scheduler(topic, {
      topics: [topic, later],
      recent: { everyMs: 30, windowMs: 600_000, settleMs: 0 },
      maxAutoRepair: 1,
      escalateTimeoutMs: 200,
      onEscalate: () => {
        calls++;
        if (calls === 1) throw new Error('pager unreachable');
        return new Promise(() => {}); // never settles: the timeout ends it
      },
    });
    const failures: string[] = [];
    s.on('hookFailed', (e) => failures.push(e.message));
    let reports = 0;
    s.on('report', () => reports++);
    s.start();
    try {
      await waitFor(() => failures.length === 1, { what: 'the first hook failure' });
      await topicWithLoss(3, 2, later);
      await waitFor(() => failures.length === 2, { what: 'the second hook failure' });
      const seen = reports;
      await waitFor(() => reports > seen, { what: 'a run after both failures' });
    } finally {
      await s.stop();
    }
    assert.equal(failures[0], 'pager unreachable');
    assert.match(failures[1] ?? '', /still running after 200 ms/);
    assert.equal(await counter(metrics, 'zeroloss_reconcile_escalation_hook_failures_total'), 2);
    assert.equal(await counter(metrics, 'zeroloss_reconcile_escalations_total'), 2);

    // Retention never deletes a run that still waits for a person.
    const held = (await store.heldRuns(1_000)).length;
    assert.equal(held, heldBefore + 2);
    await store.deleteBatch('reconcile_run', 0, 10_000);
    assert.equal((await store.heldRuns(1_000)).length, held);
    const { rows } = await env.pool.query(
      `select count(*)::int as n from "${env.schema}".reconcile_run where status is distinct from 'held'`,
    );
    assert.equal(rows[0].n, 0, 'the other runs are gone');
  });
});
