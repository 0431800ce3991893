import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { walSlotMigration } from '../../../src/adapters/postgres/migrations/020-wal-slot.ts';
import { walDoctor } from '../../../src/adapters/postgres/wal/wal-doctor.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { walShardOf } from '../../../src/core/wal-shard.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import { KAFKA_BROKERS } from '../../helpers/kafka.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { slotCreationScenario } from './slot-creation-scenario.ts';
import { beforeEachStatement, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * Creating a slot is not transactional; handing the rows committed before it to the polling path is. A
 * `--create-slot` that dies between the two (Ctrl-C or SIGKILL during a long hand-over, a lost connection)
 * leaves the slot behind with the hand-over rolled back. Relays then streamed that slot, a second
 * `--create-slot` found it and did nothing, and the rows committed before it were never sent. Here the
 * dying run is a wrapper of the Database port whose hand-over fails, and whose clean-up drop of the slot
 * fails too, as it would with the process gone.
 */
let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });
before(async () => {
  instance = await startWalPostgres('create-interrupted');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
});

function dyingMidHandOver(db: Database): Database {
  return beforeEachStatement(db, (sql) => {
    if (sql.includes('handed to the polling path when the WAL slot was created')) throw new Error('test: the creating run died');
    if (sql.includes('pg_drop_replication_slot')) throw new Error('test: the creating run is gone; nobody drops the slot');
  });
}

test('a slot left by a --create-slot that died before its hand-over is not streamed, and the next --create-slot makes it anew', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const { enqueue, relay, states, reasons, onTopic } = await slotCreationScenario(s, transport, 'zl-wal-create-died');
  const slotExists = async () =>
    (await s.pool.query('select 1 from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows.length === 1;
  try {
    // Committed before the slot: not in its stream, the hand-over's to send.
    await enqueue(1);
    await enqueue(2);
    const dying = postgresWal(
      { db: dyingMidHandOver(s.store.db), schema: s.schema, relaySource: s.store.relaySource, kind: 'postgres' },
      { url: s.url },
    );
    await assert.rejects(dying.createSlot('test'), /the creating run died/);
    assert.ok(await slotExists(), 'the dying run left its slot behind (the situation under test)');

    await relay.start();
    await waitFor(() => states.length > 0, { what: 'the relay to take the slot or stand by', timeoutMs: 20_000 });
    assert.equal(states[0], 'standby', 'a slot without a recorded hand-over is not streamed');
    assert.match(reasons[0] ?? '', /stopped before handing the older rows over: run `zeroloss relay --mode wal --create-slot` again/);
    // doctor --pg says so too, as an error (exit 1).
    const report = await walDoctor(s.store.db);
    const finding = report.findings.find((f) => f.subject === `slot:${s.wal.slot}` && f.setting === 'hand-over');
    assert.equal(finding?.severity, 'error', JSON.stringify(report.findings));
    assert.match(finding?.message ?? '', /--create-slot stopped before handing the rows committed before this slot over/);
    assert.equal(report.ok, false);

    const again = await s.wal.createSlot('test');
    assert.deepEqual(
      again,
      { created: true, handedOver: 2, insertOnly: false },
      'the next --create-slot makes the slot anew and hands the older rows over',
    );
    await waitFor(() => states.includes('streaming'), { what: 'the relay to stream the new slot', timeoutMs: 20_000 });
    assert.deepEqual(
      (await walDoctor(s.store.db)).findings.filter((f) => f.setting === 'hand-over'),
      [],
      'recorded now: nothing for doctor to say',
    );
    await enqueue(3);
    const { order, ...check } = await onTopic(3);
    assert.deepEqual(check, { lost: 0, orderViolations: 0 }, `topic order ${order}`);
  } finally {
    await relay.stop();
    await s.cleanup();
  }
});

test('migration 20 records the slots made before it, so their relays keep streaming after the upgrade', async () => {
  const s = await walSchema(instance.url);
  try {
    // As a slot made by the release before migration 20 is: no record.
    await s.pool.query(`delete from "${s.schema}".wal_slot where slot_name = $1`, [s.wal.slot]);
    await s.pool.query(walSlotMigration.sql(`"${s.schema}"`));
    const { rows } = await s.pool.query(`select handed_over from "${s.schema}".wal_slot where slot_name = $1`, [s.wal.slot]);
    assert.equal(rows.length, 1, 'the existing slot is recorded');
    assert.deepEqual(
      await s.wal.createSlot('test'),
      { created: false, handedOver: 0, insertOnly: false },
      'and --create-slot leaves it as it is',
    );
  } finally {
    await s.cleanup();
  }
});

test('shards: a shard slot left without a recorded hand-over is refused to relays, and --create-slot --shards makes it anew', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const shards = postgresWalShards(s.store, { url: s.url });
  const outbox = testOutbox({ schema: s.schema });
  try {
    await shards.createShards(2, 'test');
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => walShardOf(k, 2) === 0) as string;
    for (let i = 0; i < 3; i++) await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 't', key, type: 't', payload: { i } }));
    const shard0 = (await shards.list()).find((x) => x.shard === 0);
    assert.ok(shard0);
    // As a re-creation of shard 0's slot that died before its hand-over committed leaves it.
    await s.pool.query(`delete from "${s.schema}".wal_slot where slot_name = $1`, [shard0.slot]);
    await assert.rejects(shards.open(shard0, 'test').stream.open({} as never), /left by a --create-slot that stopped/);

    const again = await shards.createShards(2, 'test');
    assert.deepEqual(again.created, [shard0.slot], 'only the unrecorded shard is made anew');
    assert.ok(again.dropped.includes(shard0.slot));
    assert.equal(again.handedOver, 3, "its shard's unsent rows go to the polling path");
    const { rows } = await s.pool.query(`select 1 from "${s.schema}".wal_slot where slot_name = $1`, [shard0.slot]);
    assert.equal(rows.length, 1, 'recorded again');
  } finally {
    await shards.dropShards().catch(() => {});
    await s.cleanup();
  }
});
