import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import { rejected, ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * What `zeroloss serve` counts of the WAL relay's sends (zeroloss_outbox_transitions_total,
 * zeroloss_outbox_commit_to_ack_seconds; ops/alert-rules.yml's send success rate is built on them). The
 * WAL relay wrote no transition for a send, in either mode: the collector counted none of its sends, only
 * its failures and their later resends, and the success-rate alert read a relay sending thousands a second
 * with one failure as 0 % successful.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('sent-metrics');
});
after(async () => {
  await instance?.stop('fast');
});

async function sendAndCollect(
  s: WalSchema,
  messages: number,
): Promise<{ text: string; trace: Awaited<ReturnType<PostgresOperationsStore['transitions']>> }> {
  const ops = new PostgresOperationsStore(pgDatabase({ pool: s.pool }), { schema: s.schema });
  const metrics = createOpsMetrics(new Registry());
  const collector = new OpsCollector({ store: ops, metrics }, { commitDelayMs: 0, groups: [] });
  await collector.collect(); // counting starts here
  const publisher = new ScriptedPublisher();
  // One message of key k3 is refused for good: it goes to the polling path as a failure, its key held back.
  publisher.decide = (r) => (r.key === 'k3' && publisher.sent.every((x) => x.key !== 'k3') ? rejected() : undefined);
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher },
    walBatchSize: 20,
    backoff: { baseMs: 20, maxMs: 50, jitter: 0 },
    maxAttempts: 1,
    pollIntervalMs: 20,
  });
  relay.on('error', () => {});
  const outbox = testOutbox({ schema: s.schema, producerId: 'm' });
  const ids: string[] = [];
  for (let t = 0; t < messages; t += 10) {
    await s.store.transaction(async (tx) => {
      for (let i = t; i < t + 10; i++)
        ids.push((await outbox.enqueue(tx, { topic: 'orders', key: `k${i % 7}`, type: 'order.placed', payload: { i } })).id);
    });
  }
  await relay.start();
  try {
    // Every row of the other keys is sent; k3's first row fails for good (the polling path parks it), its
    // later rows wait behind it.
    const others = ids.length - Math.ceil(messages / 7);
    await waitFor(async () => publisher.sent.length >= others, { what: 'the other keys sent', timeoutMs: 20_000 });
    await waitFor(
      async () => {
        const { rows } = await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 3`);
        return rows[0].n === 1;
      },
      { what: "k3's first row parked", timeoutMs: 20_000 },
    );
  } finally {
    await relay.stop();
  }
  await collector.collect();
  return { text: await metrics.registry.metrics(), trace: await ops.transitions(ids[0] as string) };
}

function counted(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.split(' ')[1] ?? 0);
}

for (const insertOnly of [false, true]) {
  test(`${insertOnly ? 'insert-only' : 'row'} mode: every first send the WAL relay records is counted, with its commit-to-ack time`, async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    try {
      await s.wal.createSlot('test', { insertOnly });
      const messages = 70;
      const { text, trace } = await sendAndCollect(s, messages);
      const firsts = counted(text, 'zeroloss_outbox_transitions_total{to="sent",kind="first"}');
      const sentRows = await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox o where o.msg_key <> 'k3'`);
      assert.equal(firsts, sentRows.rows[0].n, 'one first send counted per row of the keys that were sent');
      assert.equal(counted(text, 'zeroloss_outbox_commit_to_ack_seconds_count{kind="first"}'), firsts);
      const refused =
        counted(text, 'zeroloss_outbox_transitions_total{to="parked",kind="first"}') +
        counted(text, 'zeroloss_outbox_transitions_total{to="failed",kind="first"}');
      assert.ok(refused >= 1, 'the refused row counted too');
      if (!insertOnly) {
        // trace finds the batch's transition through the row (as for the polling relay's rounds).
        assert.deepEqual(
          trace.map((t) => [t.from, t.to, t.attempt]),
          [[0, 1, 1]],
        );
      }
    } finally {
      await s.cleanup();
    }
  });
}
