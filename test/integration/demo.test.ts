import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import { createAdmin } from '../../src/adapters/kafka/kafka-admin.ts';
import { rabbitmq } from '../../src/adapters/rabbitmq/rabbitmq-transport.ts';
import { redisStreams } from '../../src/adapters/redis-streams/redis-streams-transport.ts';
import { DEFAULT_RETRY_POLICY } from '../../src/consumer/retry-policy.ts';
import { plannedDeadLetter, plannedFault } from '../../src/demo/fault-plan.ts';
import { LOTTERY_FAULTS } from '../../src/demo/scenarios.ts';
import { deliveryRetries } from '../../src/examples/lottery/delivery-service.ts';
import type { AwardType } from '../../src/examples/lottery/draw-service.ts';
import { KAFKA_BROKERS } from '../helpers/kafka.ts';
import { freePort } from '../helpers/consumer-workload.ts';
import { DemoProcess, runDemo } from '../helpers/demo-cli.ts';
import { PG_URL } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';

const REDIS_URL = process.env.ZL_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RABBITMQ_URL = process.env.ZL_TEST_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** Short runs: few draws, short retry delays; the kills (each instance at least once) set the pace. */
const SHORT = ['--users', '20', '--draws', '300', '--retry-delay-ms', '300', '--kill-every-ms', '1500'];

interface DemoJson {
  committed: number;
  published: number;
  delivered: number;
  deliveredByType: Record<string, number>;
  duplicatesSkipped: number;
  retried: number;
  deadLettered: number;
  expectedDeadLettered: number;
  lost: number;
  appliedTwice: number;
  orderViolations: number;
  elapsedMs: number;
  faults: { relayKills: number; consumerKills: number; duplicatesInjected: number; unexpectedExits: number };
  checks: { settled: boolean; parked: number; deliveredAndDeadLettered: number; unexpectedDeadLetters: number; missingDeadLetters: number };
  points?: {
    openingTotal: number;
    balanceTotal: number;
    committedPoints: number;
    appliedPoints: number;
    deadLetteredPoints: number;
    accountsOff: number;
    reconciled: boolean;
  };
  seed: number;
  transport: string;
  kept?: { schema?: string; topics?: string[] };
  ok: boolean;
}

/** Runs `zeroloss demo … --json` through the CLI, as a newcomer would; returns its exit code and parsed JSON. */
function demo(args: string[]): Promise<{ code: number | null; json: DemoJson; stderr: string }> {
  return runDemo<DemoJson>(args);
}

/**
 * `zeroloss demo … --dashboard`: the dashboard's overview is read while the demo runs and again after its
 * result is printed (the page stays up until Ctrl-C), then SIGINT ends it.
 */
async function demoWithDashboard(
  args: string[],
): Promise<{ code: number | null; json: DemoJson; stderr: string; during: Overview; after: Overview; page: string }> {
  const port = await freePort();
  const run = new DemoProcess([...args, '--json', '--dashboard', '--dashboard-port', String(port)]);
  try {
    const url = await waitFor(() => /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(run.stderr)?.[1], {
      what: `the dashboard URL printed (stderr: ${run.stderr.slice(-1_000)})`,
      timeoutMs: 120_000,
    });
    const overview = async () => {
      const res = await fetch(`${url}/api/overview`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200);
      return (await res.json()) as Overview;
    };
    const during = await overview();
    const page = await (await fetch(`${url}/`, { signal: AbortSignal.timeout(10_000) })).text();
    // Served while the demo runs: its result is not printed yet.
    assert.equal(run.stdout, '', 'the overview was read before the demo finished');
    const json = await waitFor(() => run.result<DemoJson>(), { what: 'the result printed', timeoutMs: 180_000 });
    const after = await overview();
    run.child.kill('SIGINT');
    return { code: await run.exited, json, stderr: run.stderr, during, after, page };
  } finally {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
  }
}

interface Overview {
  outbox: { pending: number; failed: number; parked: number };
  groups: Array<{ group: string; lag: string }>;
}

/** The run's topic, from the line the demo prints to stderr ("…, topic zl-demo-<run>-lottery (6 partitions…"). */
function topicOf(stderr: string): string {
  const topic = /, topic (\S+) \(/.exec(stderr)?.[1];
  assert.ok(topic, `topic named on stderr:\n${stderr.slice(0, 2_000)}`);
  return topic;
}

/** What every run must show, whatever the example and the infrastructure. */
function assertNothingLostOrDoubled(r: { code: number | null; json: DemoJson; stderr: string }, units: number) {
  const j = r.json;
  const context = `\n${JSON.stringify(j, null, 2)}\n${r.stderr.slice(-2_000)}`;
  assert.equal(j.committed, units, `every unit of work committed${context}`);
  assert.equal(j.published, j.committed, `every committed message published${context}`);
  assert.equal(j.lost, 0, `lost${context}`);
  assert.equal(j.appliedTwice, 0, `applied twice${context}`);
  assert.equal(j.orderViolations, 0, `order violations${context}`);
  assert.equal(j.delivered + j.deadLettered, j.committed, `every message delivered or dead-lettered${context}`);
  assert.equal(j.deadLettered, j.expectedDeadLettered, `dead letters are the expected set${context}`);
  assert.equal(j.checks.unexpectedDeadLetters, 0, context);
  assert.equal(j.checks.missingDeadLetters, 0, context);
  assert.equal(j.checks.deliveredAndDeadLettered, 0, context);
  assert.equal(j.checks.settled, true, context);
  // The faults really happened.
  assert.ok(j.faults.relayKills >= 1, `relay killed${context}`);
  assert.ok(j.faults.consumerKills >= 2, `each consumer killed${context}`);
  assert.ok(j.faults.duplicatesInjected > 0, `duplicates injected${context}`);
  assert.ok(j.duplicatesSkipped > 0, `duplicates skipped${context}`);
  assert.ok(j.retried > 0, `transient failures retried${context}`);
  assert.equal(j.ok, true, context);
  assert.equal(r.code, 0, `exit code${context}`);
}

describe('zeroloss demo', () => {
  test('lottery on the embedded default (PGlite, table log, worker threads)', { timeout: 180_000 }, async () => {
    const r = await demo(['--users', '40', '--draws', '600', '--seed', '4242']);
    assertNothingLostOrDoubled(r, 600);
    assert.ok(r.json.deadLettered > 0, 'the fault plan dead-letters some awards');
    assert.deepEqual(Object.keys(r.json.deliveredByType).sort(), ['coupon', 'physical', 'virtual']);
  });

  test('lottery on Postgres and Kafka (child processes, SIGKILL)', { timeout: 180_000 }, async () => {
    const r = await demo(['lottery', '--users', '40', '--draws', '600', '--pg', PG_URL, '--kafka', KAFKA_BROKERS.join(','), '--keep']);
    const pool = new pg.Pool({ connectionString: PG_URL });
    const schema = r.json.kept?.schema;
    try {
      assertNothingLostOrDoubled(r, 600);
      // The dead letters, read from the kept schema, are exactly the awards the seed's fault plan fails
      // permanently or beyond their type's retry policy.
      assert.ok(schema);
      const awards = await pool.query<{ order_id: string; award_type: AwardType }>(
        `select order_id, award_type from "${schema}".user_strategy_export`,
      );
      const retries = deliveryRetries(DEFAULT_RETRY_POLICY.maxRetries);
      const expected = awards.rows
        .filter((a) =>
          plannedDeadLetter(plannedFault(r.json.seed, a.order_id, retries[a.award_type], LOTTERY_FAULTS), retries[a.award_type]),
        )
        .map((a) => a.order_id)
        .sort();
      const dead = await pool.query<{ idempotency_key: string }>(
        `select idempotency_key from "${schema}".dead_letter where consumer_group = 'lottery-delivery' and status = 'dead' order by 1`,
      );
      assert.deepEqual(
        dead.rows.map((d) => d.idempotency_key),
        expected,
      );
    } finally {
      if (schema) await pool.query(`drop schema if exists "${schema}" cascade`);
      await pool.end();
      if (r.json.kept?.topics?.length) {
        const admin = createAdmin(KAFKA_BROKERS);
        await admin.deleteTopics({ topics: r.json.kept.topics }).catch(() => {});
        await admin.close();
      }
    }
  });

  test('points on the embedded default: overdrafts dead-lettered, balances reconcile; --dashboard serves the overview while it runs', {
    timeout: 240_000,
  }, async () => {
    const r = await demoWithDashboard(['points', '--users', '30', '--draws', '500']);
    assertNothingLostOrDoubled(r, 500);
    // Issue 17, acceptance 4: the dashboard of the embedded default, from the process that holds the PGlite.
    assert.match(r.page, /Overview/);
    assert.equal(typeof r.during.outbox.pending, 'number', JSON.stringify(r.during));
    assert.equal(r.after.outbox.pending + r.after.outbox.failed + r.after.outbox.parked, 0, JSON.stringify(r.after));
    assert.ok(
      r.after.groups.every((g) => g.lag === '0'),
      JSON.stringify(r.after.groups),
    );
    const p = r.json.points;
    assert.ok(p, 'points balances reported');
    assert.ok(r.json.deadLettered > 0, 'some orders overdraw their account');
    assert.equal(p.openingTotal - p.appliedPoints, p.balanceTotal, 'balances = opening − applied deductions');
    assert.equal(p.committedPoints, p.appliedPoints + p.deadLetteredPoints, 'ordered = applied + dead-lettered');
    assert.equal(p.accountsOff, 0, 'every account matches its ledger');
    assert.equal(p.reconciled, true);
  });

  test('lottery on Postgres and Redis Streams (child processes, SIGKILL); its topics are deleted', { timeout: 120_000 }, async () => {
    const r = await demo(['lottery', ...SHORT, '--pg', PG_URL, '--redis', REDIS_URL]);
    assertNothingLostOrDoubled(r, 300);
    const prefix = /key prefix (\S+)$/.exec(r.json.transport)?.[1];
    assert.ok(prefix, r.json.transport);
    const transport = redisStreams(REDIS_URL, { prefix });
    try {
      const topic = topicOf(r.stderr);
      assert.deepEqual([...(await transport.topicAdmin.partitions([topic, `${topic}.dlq`])).keys()], []);
    } finally {
      await transport.close();
    }
  });

  test('points on Postgres and RabbitMQ (child processes, SIGKILL); its topics are deleted', { timeout: 120_000 }, async () => {
    const r = await demo(['points', ...SHORT, '--pg', PG_URL, '--rabbitmq', RABBITMQ_URL]);
    assertNothingLostOrDoubled(r, 300);
    assert.equal(r.json.points?.reconciled, true, 'balances reconcile');
    const transport = rabbitmq(RABBITMQ_URL);
    try {
      const topic = topicOf(r.stderr);
      for (const t of [topic, `${topic}.dlq`]) assert.equal(await transport.topicAdmin.partitions(t).catch(() => 0), 0, t);
    } finally {
      await transport.close();
    }
  });
});
