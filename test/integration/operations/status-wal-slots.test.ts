import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Registry } from 'prom-client';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { databaseWalSlots } from '../../../src/cli/wal-slots.ts';
import { OpsCollector } from '../../../src/operations/ops-collector.ts';
import { createOpsMetrics } from '../../../src/operations/ops-metrics.ts';
import { type PostgresInstance, startPostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import type { Status } from '../../../src/operations/status.ts';
import { zerolossJson } from '../../helpers/ops-cli.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { type WalSchema, walSchema } from '../wal-relay/wal-postgres.ts';

/**
 * #14 item 2: `zeroloss status` shows the WAL relay's slots (read or not, retained WAL, lag) and exits 1 once a
 * slot lost the WAL it needs. A throwaway Postgres with logical decoding and a tiny max_slot_wal_keep_size,
 * so a slot nobody reads is invalidated after a few WAL segments.
 */
let instance: PostgresInstance;
let s: WalSchema;
before(async () => {
  instance = await startPostgresInstance({
    port: await freePort(),
    name: 'wal-status',
    settings: { wal_level: 'logical', max_wal_senders: 5, max_replication_slots: 5, max_slot_wal_keep_size: '1MB' },
  });
  s = await walSchema(instance.url);
});
after(async () => {
  await s?.cleanup();
  await instance?.stop('fast');
});

test('status lists the slot nobody reads with the WAL it holds back, and exits 1 once it is lost', async () => {
  const status = () => zerolossJson<Status>(['status', '--pg', instance.url, '--schema', s.schema]);
  // serve's gauges, from the same query
  const metrics = createOpsMetrics(new Registry());
  const collector = new OpsCollector(
    { store: new PostgresOperationsStore(s.store.db, { schema: s.schema }), metrics, walSlots: databaseWalSlots(s.store.db) },
    { commitDelayMs: 0 },
  );
  const gauge = async (name: string) =>
    (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.slot === s.wal.stream.slot)?.value;
  const first = await status();
  assert.equal(first.code, 0, first.stderr);
  const slot = first.json.walSlots.find((x) => x.slot === s.wal.stream.slot);
  assert.ok(slot, `the slot is listed: ${JSON.stringify(first.json.walSlots)}`);
  assert.equal(slot.active, false);
  assert.notEqual(slot.walStatus, 'lost');
  assert.ok(
    first.json.warnings.some((w) => w.includes(`no relay reads replication slot ${slot.slot}`)),
    first.json.warnings.join('\n'),
  );

  await collector.collect();
  assert.equal(await gauge('zeroloss_wal_slot_active'), 0);
  assert.equal(await gauge('zeroloss_wal_slot_lost'), 0);
  assert.ok(((await gauge('zeroloss_wal_slot_retained_bytes')) ?? -1) >= 0);

  // WAL written past max_slot_wal_keep_size and removed by checkpoints: the unread slot loses its WAL.
  const pool = new pg.Pool({ connectionString: instance.url, max: 1 });
  try {
    await pool.query('create table if not exists wal_filler (x text)');
    await waitFor(
      async () => {
        await pool.query(`insert into wal_filler select repeat('x', 1000) from generate_series(1, 2000)`);
        await pool.query('select pg_switch_wal()');
        await pool.query('checkpoint');
        const { rows } = await pool.query('select wal_status from pg_replication_slots where slot_name = $1', [slot.slot]);
        return rows[0]?.wal_status === 'lost';
      },
      { what: 'the slot to lose its WAL', timeoutMs: 60_000 },
    );
  } finally {
    await pool.end();
  }
  await collector.collect();
  assert.equal(await gauge('zeroloss_wal_slot_lost'), 1);
  const lost = await status();
  assert.equal(lost.code, 1, 'a lost slot needs a person');
  assert.equal(lost.json.walSlots.find((x) => x.slot === slot.slot)?.walStatus, 'lost');
  assert.ok(
    lost.json.warnings.some((w) => w.includes(`replication slot ${slot.slot} lost the WAL it needs`)),
    lost.json.warnings.join('\n'),
  );
});
