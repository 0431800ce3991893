import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { type PostgresInstance, startPostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { beforeEachStatement, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * A slot's hand-over must see every enqueue whose commit record lies before the slot's consistent point:
 * those are not in its stream. PostgreSQL writes and flushes a commit record, then waits for a synchronous
 * standby, and only then makes the transaction visible: such a transaction was neither streamed nor handed
 * over, and its rows stayed pending for good. The instance names a synchronous standby that never comes
 * (`ghost`), with `synchronous_commit = local` by default, so only the session that sets it to `on` waits.
 *
 * The slot's creation builds its snapshot in three steps (snapbuild.c: each running-transactions record it
 * reads moves it on once the transactions before the previous one ended); the test walks it through them with
 * transactions it holds open, so the enqueue commits in the WAL before the consistent point and is still
 * invisible when the creation returns.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startPostgresInstance({
    port: await freePort(),
    name: 'wal-create-visibility',
    settings: {
      wal_level: 'logical',
      max_wal_senders: 10,
      max_replication_slots: 10,
      synchronous_standby_names: 'ghost',
      synchronous_commit: 'local',
    },
  });
});
after(async () => {
  await instance?.stop('fast');
});

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function xidOf(c: pg.Client): Promise<string> {
  await c.query('begin');
  return (await c.query<{ xid: string }>('select txid_current()::text as xid')).rows[0]?.xid as string;
}

/** Whether some backend waits for transaction `xid` to end (the slot's creation, at a snapshot step). */
async function waitedFor(pool: pg.Pool, xid: string): Promise<boolean> {
  const { rows } = await pool.query(
    "select 1 from pg_locks where locktype = 'transactionid' and transactionid::text = $1 and not granted",
    [xid],
  );
  return rows.length > 0;
}

/**
 * Runs `create` (a slot's creation with its hand-over) so that an enqueue commits in the WAL before the slot's
 * consistent point and becomes visible only after the creation reached its hand-over; resolves to what `create`
 * returned and the enqueued row's state afterwards.
 */
async function enqueueInvisibleAtConsistentPoint<T>(s: WalSchema, create: () => Promise<T>): Promise<{ made: T; state: number }> {
  const l = await client(s.url);
  const m = await client(s.url);
  const t = await client(s.url);
  try {
    // The creation's first step waits for L, its second for M (each xid taken after the step before).
    const xidL = await xidOf(l);
    const creating = create();
    creating.catch(() => {});
    await waitFor(() => waitedFor(s.pool, xidL), { what: 'the slot creation waiting for L', timeoutMs: 20_000 });
    const xidM = await xidOf(m);
    await l.query('commit');
    await waitFor(() => waitedFor(s.pool, xidM), { what: 'the slot creation waiting for M', timeoutMs: 20_000 });
    // T starts after that step: its commit record is written now, before the consistent point, and it then
    // waits for the synchronous standby, invisible, holding its locks.
    const tPid = (await t.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;
    await t.query('set synchronous_commit = on');
    await t.query('begin');
    const row = await testOutbox({ schema: s.schema }).enqueue(t, { topic: 't', key: 'k', type: 't', payload: {} });
    const committing = t.query('commit');
    committing.catch(() => {});
    await waitFor(
      async () => (await s.pool.query("select 1 from pg_stat_activity where pid = $1 and wait_event = 'SyncRep'", [tPid])).rows.length > 0,
      { what: 'T committed in the WAL and waiting for the standby', timeoutMs: 10_000 },
    );
    // M ends: the next running-transactions record lists only T, whose xid follows the step: consistent.
    await m.query('commit');
    // The creation returns (it did before the fix, without T's row) or waits at the outbox's lock for T.
    let settled = false;
    creating.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await waitFor(
      async () =>
        settled ||
        (
          await s.pool.query(
            `select 1 from pg_locks where locktype = 'relation' and relation = '"${s.schema}".outbox'::regclass and not granted`,
          )
        ).rows.length > 0,
      { what: 'the creation done or waiting for the outbox lock', timeoutMs: 20_000 },
    );
    // The standby requirement goes away for T: committed locally, visible now.
    await s.pool.query('select pg_cancel_backend($1)', [tPid]);
    await committing;
    const made = await creating;
    const { rows } = await s.pool.query<{ state: number }>(`select state from "${s.schema}".outbox where message_id = $1`, [row.id]);
    return { made, state: Number(rows[0]?.state) };
  } finally {
    for (const c of [l, m, t]) await c.end().catch(() => {});
  }
}

test('createSlot hands over an enqueue that committed before the consistent point but was not visible yet', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  try {
    const { made, state } = await enqueueInvisibleAtConsistentPoint(s, () => s.wal.createSlot('test'));
    assert.deepEqual(made, { created: true, handedOver: 1, insertOnly: false }, 'the hand-over saw the enqueue');
    assert.equal(state, 2, 'handed to the polling path (not in the stream, so nothing else would send it)');
  } finally {
    await s.cleanup();
  }
});

test('createShards hands over an enqueue that committed before the consistent point but was not visible yet', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const shards = postgresWalShards(s.store, { url: s.url });
  try {
    // One shard: one slot, whose snapshot steps the test walks as the single slot's.
    const { made, state } = await enqueueInvisibleAtConsistentPoint(s, () => shards.createShards(1, 'test'));
    assert.equal(made.handedOver, 1, 'the hand-over saw the enqueue');
    assert.equal(state, 2, 'handed to the polling path');
  } finally {
    await shards.dropShards().catch(() => {});
    await s.cleanup();
  }
});

test('a writer holding the outbox past the lock timeout fails the creation clearly and leaves no slot', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const shards = postgresWalShards(s.store, { url: s.url });
  const blocker = await client(s.url);
  try {
    await testOutbox({ schema: s.schema }).enqueue(s.pool, { topic: 't', key: 'k', type: 't', payload: {} });
    // An open transaction holding the outbox's writers' lock without a transaction id: the slot's creation
    // does not wait for it, the hand-over's wait for writers does.
    await blocker.query('begin');
    await blocker.query(`lock table "${s.schema}".outbox in row exclusive mode`);
    const slots = async () =>
      (await s.pool.query(`select slot_name from pg_replication_slots where slot_name like $1`, [`%${s.schema}%`])).rows;
    const refused = (error: unknown) => {
      const e = error as { code?: string; retryable?: boolean; message: string };
      assert.equal(e.code, 'ZL_STORE_CONFLICT');
      assert.equal(e.retryable, true);
      assert.match(e.message, /creating the WAL slot waited 5 s for the outbox's table lock/);
      assert.match(e.message, /synchronous standby/);
      return true;
    };
    await assert.rejects(s.wal.createSlot('test'), refused);
    assert.deepEqual(await slots(), [], 'the slot was dropped again');
    await assert.rejects(shards.createShards(2, 'test'), refused);
    assert.deepEqual(await slots(), [], "the shards' slots were dropped again");
    const { rows } = await s.pool.query(`select state from "${s.schema}".outbox`);
    assert.deepEqual(
      rows.map((r) => r.state),
      [0],
      'nothing handed over',
    );
    await blocker.query('commit');
    assert.deepEqual(await s.wal.createSlot('test'), { created: true, handedOver: 1, insertOnly: false }, 'made once the writer ended');
  } finally {
    await blocker.end().catch(() => {});
    await shards.dropShards().catch(() => {});
    // A failed createShards leaves its publications (made before its transaction), no shard rows.
    for (const i of [0, 1]) await s.pool.query(`drop publication if exists "zeroloss_${s.schema}_outbox_s${i}"`);
    await s.cleanup();
  }
});

test('the wait for writers holds no lock through the hand-over: an enqueue commits while the hand-over is held', {
  timeout: 30_000,
}, async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached = () => {};
  const atHandOver = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const held = beforeEachStatement(s.store.db, async (sql) => {
    if (sql.includes('handed to the polling path when the WAL slot was created')) {
      reached();
      await gate;
    }
  });
  try {
    const creating = postgresWal(
      { db: held, schema: s.schema, relaySource: s.store.relaySource, kind: 'postgres' },
      { url: s.url },
    ).createSlot('test');
    creating.catch(() => {});
    await atHandOver;
    // After the slot's consistent point: in the stream; the application is not held back meanwhile.
    await s.store.transaction((tx) => testOutbox({ schema: s.schema }).enqueue(tx, { topic: 't', key: 'k', type: 't', payload: {} }));
    release();
    const made = await creating;
    assert.equal(made.created, true);
  } finally {
    release();
    await s.cleanup();
  }
});
