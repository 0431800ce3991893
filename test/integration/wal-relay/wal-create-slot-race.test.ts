import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import { KAFKA_BROKERS } from '../../helpers/kafka.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { slotCreationScenario } from './slot-creation-scenario.ts';
import { beforeEachStatement, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * `--create-slot` creates the slot, then hands the rows committed before it to the polling path. Another
 * relay (a standby waiting for the slot, as in the fault suite's wal-slot-lost) may find the slot in
 * between: it must not stream a key's new rows while that key's older rows are still being handed over,
 * or the new ones reach the topic first. The hand-over is held at its statement by a wrapper of the
 * Database port, so the window is as wide as the test needs.
 */
let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });
before(async () => {
  instance = await startWalPostgres('create-race');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
});

/** `db` whose hand-over statement (autocommit or in a transaction) waits for `gate` once it is reached. */
function holdingHandOver(db: Database, reached: () => void, gate: Promise<void>): Database {
  return beforeEachStatement(db, async (sql) => {
    if (sql.includes('handed to the polling path when the WAL slot was created')) {
      reached();
      await gate;
    }
  });
}

test('a relay finding the slot while --create-slot hands older rows over does not send their key ahead of them', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const { enqueue, sent, relay, states, onTopic } = await slotCreationScenario(s, transport, 'zl-wal-create-race');
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  try {
    // Committed before the slot: not in its stream, the hand-over's to send.
    await enqueue(1);
    await enqueue(2);
    let reached = () => {};
    const atHandOver = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const creator = postgresWal(
      { db: holdingHandOver(s.store.db, reached, gate), schema: s.schema, relaySource: s.store.relaySource, kind: 'postgres' },
      { url: s.url },
    );
    const creating = creator.createSlot('test');
    creating.catch(() => {});
    await atHandOver;
    await relay.start();
    await waitFor(() => states.length > 0, { what: 'the relay taking the slot or standing by', timeoutMs: 20_000 });
    // After the slot's consistent point: in the stream.
    await enqueue(3);
    // A relay streaming now sends it at once; give it the time to, so that the outcome is certain.
    if (states[0] === 'streaming') await waitFor(async () => (await sent()) >= 1, { what: 'the streamed row sent', timeoutMs: 20_000 });
    release();
    // The streamed row too when no relay sent it first: the hand-over takes every row unsent at its commit.
    assert.ok((await creating).handedOver >= 2);
    const { order, ...check } = await onTopic(3);
    assert.deepEqual(check, { lost: 0, orderViolations: 0 }, `relay first said ${states[0]}; topic order ${order}`);
  } finally {
    release();
    await relay.stop();
    await s.cleanup();
  }
});

test('--create-slot hands over the rows of a writer it waited for, whatever the database default isolation', async () => {
  // The slot's creation waits for the transactions running at that moment: their rows commit before its
  // consistent point, outside its stream, so the hand-over must see them. Under a default isolation of
  // repeatable read (set on the database or the role) the hand-over read the snapshot its transaction took
  // before the slot, missed them, and they stayed unsent for good (pending rows belong to the stream).
  const s = await walSchema(instance.url, { createSlot: false });
  const rrUrl = `${s.url}?options=${encodeURIComponent('-c default_transaction_isolation=repeatable\\ read')}`;
  const rrStore = postgres(rrUrl, { schema: s.schema });
  const writer = await s.pool.connect();
  try {
    const { rows: iso } = await rrStore.db.query<{ level: string }>("select current_setting('transaction_isolation') as level");
    assert.equal(iso[0]?.level, 'repeatable read', 'the creating run gets repeatable read by default (the situation under test)');
    await writer.query('begin');
    const pending = await testOutbox({ schema: s.schema }).enqueue(writer, { topic: 't', key: 'k', type: 't', payload: {} });
    const creating = postgresWal(rrStore, { url: s.url }).createSlot('test');
    creating.catch(() => {});
    await waitFor(
      async () =>
        (
          await s.pool.query(
            "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%pg_create_logical_replication_slot%'",
          )
        ).rows.length > 0,
      { what: 'the slot creation waiting for the open writer', timeoutMs: 10_000 },
    );
    await writer.query('commit');
    assert.deepEqual(await creating, { created: true, handedOver: 1, insertOnly: false });
    const { rows } = await s.pool.query(`select state from "${s.schema}".outbox where message_id = $1`, [pending.id]);
    assert.equal(rows[0]?.state, 2, 'handed to the polling path');
  } finally {
    writer.release();
    await rrStore.close();
    await s.cleanup();
  }
});
