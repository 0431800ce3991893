import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type PostgresInstance, startPostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * A slot that lost the WAL it needs (`wal_status = 'lost'`, past max_slot_wal_keep_size) can never stream
 * again: `--create-slot` drops it and makes it anew with its hand-over (docs/wal-relay.md, Opt-in), as it does
 * for a lost shard's slot. It returned `created: false` for a lost slot that was recorded, so the rows of its
 * stream stayed there and new ones kept going into a stream nobody can read. A throwaway instance with a tiny
 * max_slot_wal_keep_size, so a slot nobody reads is invalidated after a few WAL segments.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startPostgresInstance({
    port: await freePort(),
    name: 'wal-lost-slot',
    settings: { wal_level: 'logical', max_wal_senders: 5, max_replication_slots: 5, max_slot_wal_keep_size: '1MB' },
  });
});
after(async () => {
  await instance?.stop('fast');
});

async function walStatus(s: WalSchema): Promise<string | undefined> {
  const { rows } = await s.pool.query<{ wal_status: string }>('select wal_status from pg_replication_slots where slot_name = $1', [
    s.wal.slot,
  ]);
  return rows[0]?.wal_status;
}

/** WAL written past max_slot_wal_keep_size and removed by checkpoints: the unread slot loses its WAL. */
async function loseSlot(s: WalSchema): Promise<void> {
  await s.pool.query(`create table if not exists "${s.schema}".wal_filler (x text)`);
  await waitFor(
    async () => {
      await s.pool.query(`insert into "${s.schema}".wal_filler select repeat('x', 1000) from generate_series(1, 2000)`);
      await s.pool.query('select pg_switch_wal()');
      await s.pool.query('checkpoint');
      return (await walStatus(s)) === 'lost';
    },
    { what: 'the slot to lose its WAL', timeoutMs: 60_000 },
  );
}

test('--create-slot makes a lost slot anew and hands over what its stream held', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const outbox = testOutbox({ schema: s.schema });
  try {
    // A row for the polling path (row mode, state 0) and one for the stream (insert-only, state 1).
    await s.wal.createSlot('test');
    const pending = await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 't', key: 'a', type: 't', payload: {} }));
    assert.deepEqual(await s.wal.createSlot('test', { insertOnly: true }), { created: false, handedOver: 0, insertOnly: true });
    const inStream = await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 't', key: 'b', type: 't', payload: {} }));
    await loseSlot(s);

    const again = await s.wal.createSlot('test', { insertOnly: true });
    assert.deepEqual(again, { created: true, handedOver: 2, insertOnly: true }, 'made anew, both rows handed over');
    assert.notEqual(await walStatus(s), 'lost');
    const { rows } = await s.pool.query<{ message_id: string; state: number }>(`select message_id, state from "${s.schema}".outbox`);
    assert.deepEqual(
      new Map(rows.map((r) => [r.message_id, r.state])),
      new Map([
        [pending.id, 2],
        [inStream.id, 2],
      ]),
    );
    const { rows: recorded } = await s.pool.query(`select slot_name, handed_over from "${s.schema}".wal_slot`);
    assert.deepEqual(recorded, [{ slot_name: `insert-only:${s.wal.slot}`, handed_over: 2 }], 'recorded anew, under the mode');

    // Once more without a loss: nothing to make.
    assert.deepEqual(await s.wal.createSlot('test', { insertOnly: true }), { created: false, handedOver: 0, insertOnly: true });
  } finally {
    await s.cleanup();
  }
});
