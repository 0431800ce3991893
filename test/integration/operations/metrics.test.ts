import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';

import { KAFKA_BROKERS, createTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** O1, O2: the metrics the collector derives, and `zeroloss serve` with scheduled reconciliation raising a gap. */
describe('operations metrics', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlmet');
  });
  after(async () => {
    await env.cleanup();
  });

  test('the collector counts sends, compensation, applied effects and end-to-end latency from the database', async () => {
    const s = `"${env.schema}"`;
    const store = new PostgresOperationsStore(env.db, { schema: env.schema });
    const metrics = createOpsMetrics(new Registry());
    const collector = new OpsCollector({ store, metrics }, { commitDelayMs: 0, groups: ['points'] });
    const outbox = testOutbox({ schema: env.schema });
    const [a, b] = await inTransaction(env.pool, async (tx) => [
      (await outbox.enqueue(tx, { topic: 't', key: 'k', type: 'x', payload: 1 })).id,
      (await outbox.enqueue(tx, { topic: 't', key: 'k', type: 'x', payload: 2 })).id,
    ]);
    await collector.collect(); // counting starts here
    await env.pool.query(
      `insert into ${s}.outbox_transition (message_id, from_state, to_state, attempt, actor) values ($1, 0, 1, 1, 'r'), ($2, 0, 2, 1, 'r'), ($2, 2, 1, 2, 'r')`,
      [a, b],
    );
    await env.pool.query(`update ${s}.outbox set state = 1 where true`);
    await env.pool.query(
      `insert into ${s}.inbox (consumer_group, idempotency_key, message_id, topic, msg_partition, msg_offset) values ('points', $1, $1, 't', 0, 0)`,
      [a],
    );
    await waitFor(async () => {
      await collector.collect();
      return /zeroloss_applied_total\{group="points"\} 1/.test(await metrics.registry.metrics());
    });
    const text = await metrics.registry.metrics();
    assert.match(text, /zeroloss_outbox_transitions_total\{to="sent",kind="first"\} 1/);
    assert.match(text, /zeroloss_outbox_transitions_total\{to="failed",kind="first"\} 1/);
    assert.match(text, /zeroloss_outbox_transitions_total\{to="sent",kind="compensation"\} 1/);
    assert.match(text, /zeroloss_outbox_commit_to_ack_seconds_count\{kind="compensation"\} 1/);
    assert.match(text, /zeroloss_end_to_end_seconds_count\{group="points"\} 1/);
    assert.match(text, /zeroloss_outbox_rows\{state="pending"\} 0/);
  });

  test('serve exposes one endpoint and its scheduled reconciliation raises the gap metric', async () => {
    const topic = uniqueTopic('zl-serve');
    await createTopic(topic, 1);
    const outbox = testOutbox({ schema: env.schema });
    // A row the relay recorded as sent, whose record the broker does not hold.
    const lost = (await inTransaction(env.pool, (tx) => outbox.enqueue(tx, { topic, key: 'k', type: 'x', payload: 1 }))).id;
    await env.pool.query(
      `update "${env.schema}".outbox set state = 1, sent_at = now(), sent_partition = 0, sent_offset = 0 where message_id = $1`,
      [lost],
    );
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'serve',
        '--pg',
        PG_URL,
        '--schema',
        env.schema,
        '--kafka',
        KAFKA_BROKERS.join(','),
        '--metrics-port',
        String(port),
        '--collect-every',
        '200ms',
        '--reconcile-every',
        '300ms',
        '--reconcile-window',
        '1h',
        '--reconcile-settle',
        '0s',
        '--nightly-hour',
        'off',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    child.stderr.on('data', (c) => (log += c));
    try {
      const body = await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`);
          const text = await res.text();
          return /zeroloss_reconcile_gaps_total\{kind="recent"\} [1-9]/.test(text) ? text : undefined;
        },
        { what: `a gap on /metrics (serve log: ${log})`, timeoutMs: 60_000 },
      );
      assert.match(body, /zeroloss_reconcile_runs_total\{kind="recent",verdict="gaps"\} [1-9]/);
      assert.match(body, /zeroloss_reconcile_missing\{kind="recent",stage="broker"\} [1-9]/);
      assert.match(body, /zeroloss_outbox_rows\{state="parked"\} 0/);
      assert.match(log, /GAP in recent window/);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    // The runs are recorded; status would show them.
    const { rows } = await env.pool.query(`select verdict from "${env.schema}".reconcile_run where kind = 'recent' limit 1`);
    assert.equal(rows[0]?.verdict, 'gaps');
  });
});
