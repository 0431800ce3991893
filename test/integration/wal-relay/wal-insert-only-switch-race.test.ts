import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { PgWalStream } from '../../../src/adapters/postgres/wal/pg-wal-stream.ts';
import { type PostgresWalShards, postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { walSql } from '../../../src/adapters/postgres/wal/wal-sql.ts';
import type { Database } from '../../../src/ports/sql-executor.ts';
import type { WalStreamHandler, WalStreamSession } from '../../../src/ports/wal-stream.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * The switch to the insert-only mode on an existing slot (`--create-slot --insert-only`) is refused while a
 * relay reads the slot: a relay of a release before the mode records the mode's rows as neither sent nor failed.
 * Such a relay checks the slot's creation lock and looks for its record under the slot's own name (the mode
 * renames it `insert-only:<slot>`, so once the switch committed it stands by). The switch looked at `active`
 * before its transaction and took no creation lock: a relay opening the slot while the switch's ALTER waited
 * for the outbox's lock found the lock free and the old record, and streamed, past the switch's commit.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('insert-only-switch-race');
});
after(async () => {
  await instance?.stop('fast');
});

/** A stream as a relay of the release before the insert-only mode opens it: it knows the record `<slot>` only. */
function oldReleaseStream(s: WalSchema, slot: string, publication: string): PgWalStream {
  const sql = walSql(`"${s.schema}"`, { publication });
  return new PgWalStream({
    url: s.url,
    schema: s.schema,
    slot,
    publication,
    db: s.store.db,
    slotInfo: sql.slotInfo,
    slotCreationDone: `${sql.slotCreationFree}, exists (select 1 from "${s.schema}".wal_slot where slot_name = $1) as recorded`,
    slotCreationFree: sql.slotCreationFree,
  });
}

const idle: WalStreamHandler = { partRows: 1000, commit: () => {}, end: () => {}, caughtUp: () => true };

/** An open transaction that read the outbox: the switch's ALTER waits for it (up to its lock timeout). */
async function readerOf(s: WalSchema): Promise<pg.PoolClient> {
  const c = await s.pool.connect();
  await c.query('begin');
  await c.query(`select 1 from "${s.schema}".outbox limit 1`);
  return c;
}

async function alterWaiting(s: WalSchema): Promise<boolean> {
  const { rows } = await s.pool.query(
    "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like 'alter table %set default 1'",
  );
  return rows.length > 0;
}

async function slotActive(s: WalSchema, slot: string): Promise<boolean> {
  const { rows } = await s.pool.query<{ active: boolean }>('select active from pg_replication_slots where slot_name = $1', [slot]);
  return rows[0]?.active === true;
}

/** `db` whose transactions wait for `hold` before their first statement. */
function holdingTransactions(db: Database, hold: () => Promise<void>): Database {
  return {
    query: (sql, params) => db.query(sql, params),
    transaction: (fn) =>
      db.transaction(async (tx) => {
        await hold();
        return fn(tx);
      }),
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    close: () => db.close(),
  };
}

test('a relay of the release before the mode opening the slot while the switch waits for the table lock stands by', async () => {
  const s = await walSchema(instance.url);
  const sessions: WalStreamSession[] = [];
  const blocker = await readerOf(s);
  try {
    const switching = s.wal.createSlot('test', { insertOnly: true });
    switching.catch(() => {});
    await waitFor(() => alterWaiting(s), { what: "the switch's ALTER waiting for the outbox's lock" });
    const old = oldReleaseStream(s, s.wal.slot, s.wal.publication);
    await assert.rejects(
      old.open(idle).then((session) => sessions.push(session)),
      { code: 'ZL_LOCK_BUSY', message: /is being created/ },
      'the old relay stands by while the switch runs',
    );
    await blocker.query('commit');
    assert.deepEqual(await switching, { created: false, handedOver: 0, insertOnly: true });
    // Committed: its record is under the mode's name, which the old relay does not know.
    await assert.rejects(
      old.open(idle).then((session) => sessions.push(session)),
      { code: 'ZL_LOCK_BUSY', message: /left by a --create-slot/ },
    );
  } finally {
    await blocker.query('rollback').catch(() => {});
    blocker.release();
    for (const session of sessions) await session.close().catch(() => {});
    await s.cleanup();
  }
});

test('a relay that opened the slot between the switch looking and its transaction fails the switch', async () => {
  const s = await walSchema(instance.url);
  const sessions: WalStreamSession[] = [];
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached = () => {};
  const atTransaction = new Promise<void>((resolve) => {
    reached = resolve;
  });
  try {
    const held = holdingTransactions(s.store.db, async () => {
      reached();
      await gate;
    });
    const switching = postgresWal(
      { db: held, schema: s.schema, relaySource: s.store.relaySource, kind: 'postgres' },
      { url: s.url },
    ).createSlot('test', { insertOnly: true });
    switching.catch(() => {});
    await atTransaction;
    sessions.push(await oldReleaseStream(s, s.wal.slot, s.wal.publication).open(idle));
    await waitFor(() => slotActive(s, s.wal.slot), { what: 'the old relay reading the slot' });
    release();
    await assert.rejects(switching, { code: 'ZL_INVALID_CONFIG', message: /is being read/ });
    assert.equal(await s.wal.insertOnly(), false, 'nothing switched');
  } finally {
    release();
    for (const session of sessions) await session.close().catch(() => {});
    await s.cleanup();
  }
});

async function shardsOf(s: WalSchema): Promise<PostgresWalShards> {
  await s.wal.dropSlot('test');
  const set = postgresWalShards(s.store, { url: s.url });
  await set.createShards(2, 'test');
  return set;
}

test('shards: a relay of the release before the mode opening a shard while the switch waits stands by', async () => {
  const s = await walSchema(instance.url);
  const set = await shardsOf(s);
  const sessions: WalStreamSession[] = [];
  const blocker = await readerOf(s);
  try {
    const [shard0] = await set.list();
    assert.ok(shard0);
    const switching = set.createShards(2, 'test', { insertOnly: true });
    switching.catch(() => {});
    await waitFor(() => alterWaiting(s), { what: "the switch's ALTER waiting for the outbox's lock" });
    await assert.rejects(
      oldReleaseStream(s, shard0.slot, shard0.publication)
        .open(idle)
        .then((session) => sessions.push(session)),
      { code: 'ZL_LOCK_BUSY', message: /is being created/ },
    );
    await blocker.query('commit');
    assert.deepEqual(await switching, { created: [], handedOver: 0, dropped: [] });
    assert.equal(await s.wal.insertOnly(), true);
  } finally {
    await blocker.query('rollback').catch(() => {});
    blocker.release();
    for (const session of sessions) await session.close().catch(() => {});
    await set.dropShards().catch(() => {});
    await s.cleanup();
  }
});

test('shards: while a missing shard is made and the mode switched, a relay opening another shard stands by', async () => {
  const s = await walSchema(instance.url);
  const set = await shardsOf(s);
  const sessions: WalStreamSession[] = [];
  const blocker = await readerOf(s);
  try {
    const [shard0, shard1] = await set.list();
    assert.ok(shard0 && shard1);
    // Shard 1's slot dropped behind the relays' back: the switch's transaction makes it anew.
    await s.pool.query('select pg_drop_replication_slot($1)', [shard1.slot]);
    const switching = set.createShards(2, 'test', { insertOnly: true });
    switching.catch(() => {});
    await waitFor(() => alterWaiting(s), { what: "the switch's ALTER waiting for the outbox's lock" });
    await assert.rejects(
      oldReleaseStream(s, shard0.slot, shard0.publication)
        .open(idle)
        .then((session) => sessions.push(session)),
      { code: 'ZL_LOCK_BUSY', message: /is being created/ },
    );
    await blocker.query('commit');
    assert.deepEqual((await switching).created, [shard1.slot]);
    assert.equal(await s.wal.insertOnly(), true);
  } finally {
    await blocker.query('rollback').catch(() => {});
    blocker.release();
    for (const session of sessions) await session.close().catch(() => {});
    await set.dropShards().catch(() => {});
    await s.cleanup();
  }
});
