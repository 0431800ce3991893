import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { beforeEachStatement, startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * One single slot per outbox (docs/wal-relay.md, Opt-in). `--create-slot --slot <other>` made a second slot
 * beside the default one: both streamed every row, each relay sent it and (insert-only) listed it under its
 * own slot, so every message went out twice and was counted as a first send twice; `--drop-slot` of the
 * default one then left the insert-only mode while the other still streamed. Which slots are the outbox's
 * is worked out without counting another schema's: migration 20 recorded every logical slot of the
 * database in every schema's `wal_slot`.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('second-slot');
});
after(async () => {
  await instance?.stop('fast');
});

async function slotExists(s: WalSchema, slot: string): Promise<boolean> {
  return (await s.pool.query('select 1 from pg_replication_slots where slot_name = $1', [slot])).rows.length > 0;
}

async function dropIfThere(s: WalSchema, slot: string): Promise<void> {
  await s.pool.query('select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1', [slot]).catch(() => {});
}

/**
 * A second slot as a release before this check made it: created beside the first and recorded by its own
 * hand-over transaction (the outbox has two slots and both stream).
 */
async function madeByAnOlderRelease(s: WalSchema, slot: string): Promise<void> {
  await s.pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  const insertOnly = await s.wal.insertOnly();
  await s.pool.query(`insert into "${s.schema}".wal_slot (slot_name, handed_over) values ($1, 0)`, [
    insertOnly ? `insert-only:${slot}` : slot,
  ]);
}

describe('a second single slot for the same outbox', () => {
  test('is refused beside the default slot, naming it and saying to drop it first; --create-slot of the existing one stays idempotent', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const other = `${s.wal.slot}_b`;
    try {
      assert.deepEqual(await s.wal.createSlot('test', { insertOnly: true }), { created: true, handedOver: 0, insertOnly: true });
      const second = postgresWal(s.store, { url: s.url, slot: other });
      await assert.rejects(second.createSlot('test'), (error: Error & { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(error.code, 'ZL_INVALID_CONFIG');
        assert.match(error.message, new RegExp(`streams through slot ${s.wal.slot} already`));
        assert.match(error.message, /relay --mode wal --drop-slot\)/, 'says how to drop the one in place');
        assert.deepEqual(error.details, { field: 'slot', slot: other, slots: [s.wal.slot] });
        return true;
      });
      assert.equal(await slotExists(s, other), false, 'no second slot left behind');
      // Not even under --insert-only, and the default one is left as it was.
      await assert.rejects(second.createSlot('test', { insertOnly: true }), { code: 'ZL_INVALID_CONFIG' });
      assert.deepEqual(await s.wal.createSlot('test', { insertOnly: true }), { created: false, handedOver: 0, insertOnly: true });
      assert.deepEqual(await s.wal.createSlot('test'), { created: false, handedOver: 0, insertOnly: true });
    } finally {
      await dropIfThere(s, other);
      await s.cleanup();
    }
  });

  test('the default slot is refused beside a slot made under another name, which is named with its own drop command', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const other = `${s.wal.slot}_b`;
    const first = postgresWal(s.store, { url: s.url, slot: other });
    try {
      assert.deepEqual(await first.createSlot('test'), { created: true, handedOver: 0, insertOnly: false });
      await assert.rejects(s.wal.createSlot('test'), {
        code: 'ZL_INVALID_CONFIG',
        message: new RegExp(`streams through slot ${other} already.*relay --mode wal --drop-slot --slot ${other}`),
      });
      assert.equal(await slotExists(s, s.wal.slot), false);
      // Shards are refused beside it too (they looked for the default slot's name only).
      await assert.rejects(postgresWalShards(s.store, { url: s.url }).createShards(2, 'test'), {
        code: 'ZL_INVALID_CONFIG',
        message: new RegExp(`slot\\(s\\) ${other}`),
      });
      assert.deepEqual(await first.createSlot('test'), { created: false, handedOver: 0, insertOnly: false }, 'idempotent');
      // Dropped, the other name may be used.
      assert.equal(await first.dropSlot('test'), true);
      assert.deepEqual(await s.wal.createSlot('test'), { created: true, handedOver: 0, insertOnly: false });
    } finally {
      await dropIfThere(s, other);
      await s.cleanup();
    }
  });

  test("another schema's slot in the same database is not counted, though migration 20 recorded it in this schema too", async () => {
    const b = await walSchema(instance.url, { createSlot: false });
    let a: WalSchema | undefined;
    try {
      // B's slot exists before A is migrated: A's migration 20 records it in A's wal_slot.
      await b.wal.createSlot('test', { insertOnly: true });
      a = await walSchema(instance.url, { createSlot: false });
      const { rows: seeded } = await a.pool.query(`select slot_name from "${a.schema}".wal_slot`);
      assert.ok(
        seeded.some((r) => r.slot_name === b?.wal.slot),
        "the precondition: A's wal_slot names B's slot",
      );
      const aSlot = postgresWal(a.store, { url: a.url, slot: `${a.wal.slot}_custom` });
      assert.deepEqual(await aSlot.createSlot('test', { insertOnly: true }), { created: true, handedOver: 0, insertOnly: true });
      // A's only slot dropped: A leaves the mode (B's slot streams B's outbox only), B stays in it.
      assert.equal(await aSlot.dropSlot('test'), true);
      assert.equal(await a.wal.insertOnly(), false);
      assert.equal(await b.wal.insertOnly(), true);
      assert.deepEqual(await a.wal.createSlot('test'), { created: true, handedOver: 0, insertOnly: false });
      assert.deepEqual(await b.wal.createSlot('test'), { created: false, handedOver: 0, insertOnly: true });
    } finally {
      if (a) {
        await dropIfThere(a, `${a.wal.slot}_custom`);
        await a.cleanup();
      }
      await b.cleanup();
    }
  });

  test('with two slots left by an older release, dropping one keeps the insert-only mode while the other streams', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const other = `${s.wal.slot}_b`;
    try {
      await s.wal.createSlot('test', { insertOnly: true });
      await madeByAnOlderRelease(s, other);
      // Refused for either name while both exist, so nothing new comes of it.
      await assert.rejects(postgresWal(s.store, { url: s.url, slot: `${s.wal.slot}_c` }).createSlot('test'), {
        code: 'ZL_INVALID_CONFIG',
        message: new RegExp(`slot ${s.wal.slot}, ${other} already`),
      });
      assert.equal(await s.wal.dropSlot('test'), true);
      assert.equal(await s.wal.insertOnly(), true, 'the other slot still streams: the mode stays');
      // --drop-slot without --slot names the default slot, which is gone: the other still streams.
      assert.equal(await s.wal.dropSlot('test'), false);
      assert.equal(await s.wal.insertOnly(), true);
      assert.equal(await postgresWal(s.store, { url: s.url, slot: other }).dropSlot('test'), true);
      assert.equal(await s.wal.insertOnly(), false, "the outbox's last slot gone: the mode is left");
    } finally {
      await dropIfThere(s, `${s.wal.slot}_c`);
      await dropIfThere(s, other);
      await s.cleanup();
    }
  });

  test('two creations under other names at once: one slot is made, the other is refused once the first committed', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const [one, two] = [`${s.wal.slot}_a`, `${s.wal.slot}_b`];
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The first creation stops before its hand-over: its slot is made, its record not yet committed.
    const paused = beforeEachStatement(s.store.db, async (sql) => {
      if (/^\s*with pending as/.test(sql)) await held;
    });
    const first = postgresWal({ ...s.store, db: paused }, { url: s.url, slot: one }).createSlot('test');
    first.catch(() => {});
    try {
      await waitFor(() => slotExists(s, one), { what: 'the first slot made' });
      const second = postgresWal(s.store, { url: s.url, slot: two }).createSlot('test');
      second.catch(() => {});
      // Both would find no other slot of the outbox before the first's record commits: the second waits.
      await waitFor(
        async () =>
          (
            await s.pool.query(
              `select 1 from pg_locks where locktype = 'advisory' and not granted
               and database = (select oid from pg_database where datname = current_database())`,
            )
          ).rows.length > 0,
        { what: 'the second creation waiting for the first', timeoutMs: 10_000 },
      );
      release();
      assert.deepEqual(await first, { created: true, handedOver: 0, insertOnly: false });
      await assert.rejects(second, { code: 'ZL_INVALID_CONFIG', message: new RegExp(`streams through slot ${one} already`) });
      assert.equal(await slotExists(s, two), false);
    } finally {
      release();
      await dropIfThere(s, one);
      await dropIfThere(s, two);
      await s.cleanup();
    }
  });
});
