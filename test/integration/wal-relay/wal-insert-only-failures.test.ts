import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { parseLsn } from '../../../src/adapters/postgres/wal/lsn.ts';
import { HEADER } from '../../../src/core/envelope.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { WalRelay } from '../../../src/outbox/wal-relay.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import type { WalLedger, WalSent } from '../../../src/ports/wal-stream.ts';
import { ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { confirmedFlush, startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';
import { enqueueOrders, type OutboxRow, outboxRows } from './insert-only-rows.ts';

/**
 * The insert-only mode (docs/wal-relay.md, "What was sent is recorded") when its record fails: the batch
 * listing refused for a while, a relay dying between the broker's answer and the record's commit, a batch
 * mixing rows of the old default (recorded on the row) with insert-only ones (listed) whose record fails
 * once, and the mode switch's ALTER timing out on the outbox's lock. Faults are real statement failures
 * (a trigger on the test's own schema) or a ledger wrapped around the real one; nothing in src knows.
 */
let instance: PostgresInstance;

before(async () => {
  instance = await startWalPostgres('io-failures');
});
after(async () => {
  await instance?.stop('fast');
});

async function insertOnlySchema(): Promise<WalSchema> {
  const s = await walSchema(instance.url, { createSlot: false });
  assert.deepEqual(await s.wal.createSlot('test', { insertOnly: true }), { created: true, handedOver: 0, insertOnly: true });
  return s;
}

function walRelay(s: WalSchema, publisher: Publisher, ledger: WalLedger = s.wal.ledger): WalRelay {
  return createRelay({
    mode: 'wal',
    wal: { stream: s.wal.stream, ledger },
    transport: { publisher },
    walBatchSize: 50,
    backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
    maxAttempts: 5,
    pollIntervalMs: 50,
  });
}

/** What a relay said: its batches' counts and its errors. */
function watch(relay: WalRelay) {
  const seen = { sent: 0, resent: 0, failed: 0, errors: [] as Error[] };
  relay.on('batch', (b) => {
    seen.sent += b.sent;
    seen.resent += b.resent;
    seen.failed += b.failed + b.heldBack;
  });
  relay.on('error', (e) => seen.errors.push(e));
  return seen;
}

const enqueue = (s: WalSchema, count: number, keys: number | string, from = 0) => enqueueOrders(s, count, keys, from, 'iof');
const rows = outboxRows;

async function listedCount(s: WalSchema): Promise<number> {
  return (await rows(s)).filter((r) => r.listed > 0).length;
}

async function batchRows(s: WalSchema): Promise<number> {
  return (await s.pool.query<{ n: number }>(`select count(*)::int as n from "${s.schema}".outbox_wal_batch`)).rows[0]?.n ?? 0;
}

/** Asserts every id was sent by `publisher` exactly once. */
function sentOnce(publisher: ScriptedPublisher, ids: string[]): void {
  const counts = new Map<string, number>();
  for (const r of publisher.sent) counts.set(r.headers?.[HEADER.id] ?? '', (counts.get(r.headers?.[HEADER.id] ?? '') ?? 0) + 1);
  for (const id of ids) assert.equal(counts.get(id), 1, `${id} published ${counts.get(id) ?? 0} times`);
  assert.equal(publisher.sent.length, ids.length);
}

/** The ledger with every call's rows noted, and what it made of them (observation only). */
function spiedLedger(inner: WalLedger) {
  const calls: Array<{ rows: WalSent[]; outcome?: 'ok' | 'failed' }> = [];
  const ledger: WalLedger = {
    retrySource: inner.retrySource,
    heldKeys: () => inner.heldKeys(),
    async record(sent, failed, batch) {
      const call: (typeof calls)[number] = { rows: [...sent] };
      calls.push(call);
      try {
        const out = await inner.record(sent, failed, batch);
        call.outcome = 'ok';
        return out;
      } catch (error) {
        call.outcome = 'failed';
        throw error;
      }
    },
  };
  return { ledger, calls };
}

const commitEnds = (sent: WalSent[]) => sent.map((r) => parseLsn(r.commitEnd ?? '0/0'));
const ascending = (values: bigint[]) => [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const min = (values: bigint[]) => ascending(values)[0] as bigint;
const max = (values: bigint[]) => ascending(values).at(-1) as bigint;

/** Whether the slot has a reader now. */
async function slotActive(s: WalSchema): Promise<boolean> {
  return (await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active === true;
}

describe('WAL relay, insert-only outbox: failures of the record', () => {
  test('the batch listing refused for a while: no acknowledgement past its rows, retried in place, every row listed once, the loop goes on', async () => {
    const s = await insertOnlySchema();
    // A real failure of the listing's INSERT: a batch listing a row of a key named in fault_batch is refused,
    // with a lock timeout's SQLSTATE (what a lock held on outbox_wal_batch would give).
    await s.pool.query(`
      create table "${s.schema}".fault_batch (msg_key text primary key);
      create function "${s.schema}".fault_batch() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from "${s.schema}".outbox o join "${s.schema}".fault_batch f on f.msg_key = o.msg_key
                   where o.seq_id = any(new.seq_ids)) then
          raise exception 'injected fault: the batch listing is refused' using errcode = 'lock_not_available';
        end if;
        return new;
      end $$;
      create trigger fault_batch before insert on "${s.schema}".outbox_wal_batch
        for each row execute function "${s.schema}".fault_batch();
      insert into "${s.schema}".fault_batch values ('early');`);
    const publisher = new ScriptedPublisher();
    const { ledger, calls } = spiedLedger(s.wal.ledger);
    const relay = walRelay(s, publisher, ledger);
    const seen = watch(relay);
    try {
      await relay.start();
      // The first transaction (key 'early') is refused; the 19 after it are recorded beside it.
      const ids = [...(await enqueue(s, 10, 'early')), ...(await enqueue(s, 190, 7, 10))];
      await waitFor(async () => seen.errors.length >= 4 && (await batchRows(s)) >= 1 && calls.some((c) => c.outcome === 'ok'), {
        what: 'the first batch refused four times while a later one is listed',
      });
      const early = calls.find((c) => c.outcome === 'failed')?.rows ?? [];
      assert.ok(early.length >= 10, 'the refused batch holds the first transaction');
      const firstCommitEnd = min(commitEnds(calls.flatMap((c) => c.rows)));
      // Later batches are listed, but the slot is not confirmed past the first commit, unrecorded.
      assert.ok((await confirmedFlush(s.pool, s.wal.slot)) < firstCommitEnd, 'the slot was acknowledged past rows whose listing failed');
      assert.ok(
        (await rows(s)).filter((r) => r.msg_key === 'early').every((r) => r.listed === 0),
        'no row of the refused batch is listed',
      );
      for (const e of seen.errors) {
        assert.ok(e instanceof ZerolossError && e.code === 'ZL_STORE_CONFLICT', `${e}`);
        assert.match(e.message, /injected fault/);
      }
      assert.equal(relay.holdingSlot, true, 'the relay keeps the slot while it retries');

      // The listing works again: the retry lists the refused batch, and everything is acknowledged.
      await s.pool.query(`delete from "${s.schema}".fault_batch`);
      await waitFor(async () => (await listedCount(s)) === 200, { what: 'every row listed' });
      const allEnds = commitEnds(calls.flatMap((c) => c.rows));
      await waitFor(async () => (await confirmedFlush(s.pool, s.wal.slot)) >= max(allEnds), { what: 'the slot acknowledged' });
      for (const r of await rows(s)) {
        assert.equal(r.listed, 1, `${r.message_id} listed ${r.listed} times`);
        assert.equal(r.state, 1);
        assert.equal(r.sent_at, null);
        assert.equal(r.updated, false, `${r.message_id} was updated`);
      }
      // Retried in place: nothing published again, nothing counted as resent.
      sentOnce(publisher, ids);
      assert.equal(seen.sent, 200);
      assert.equal(seen.resent, 0);
      const failures = await relay.registry.getSingleMetric('zeroloss_wal_relay_record_failures_total')?.get();
      assert.ok((failures?.values.reduce((n, v) => n + v.value, 0) ?? 0) >= 4 * early.length);

      // The loop goes on.
      const more = await enqueue(s, 20, 3, 200);
      await waitFor(async () => (await listedCount(s)) === 220, { what: 'rows after the fault listed' });
      sentOnce(publisher, [...ids, ...more]);
      assert.ok((await rows(s)).every((r) => r.listed === 1));
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('a relay dying after the broker confirmed, before its records committed: the replay lists every row once, duplicates counted', async () => {
    const s = await insertOnlySchema();
    // The dying relay's ledger: its first record commits and the relay dies before acknowledging it; every
    // later one dies before reaching the database. None of them ever returns (until the test ends).
    const crashed: Array<(error: Error) => void> = [];
    const dead = () => new Promise<never>((_, reject) => crashed.push(reject));
    const recorded: WalSent[] = [];
    const lost: WalSent[] = [];
    const dying: WalLedger = {
      retrySource: s.wal.ledger.retrySource,
      heldKeys: () => s.wal.ledger.heldKeys(),
      async record(sent, failed, batch) {
        if (recorded.length === 0 && lost.length === 0) {
          recorded.push(...sent);
          await s.wal.ledger.record(sent, failed, batch);
        } else lost.push(...sent);
        return dead();
      },
    };
    const first = new ScriptedPublisher();
    const relay = walRelay(s, first, dying);
    const replay = new ScriptedPublisher();
    const next = walRelay(s, replay);
    const seen = watch(next);
    try {
      const ids = await enqueue(s, 100, 7);
      await relay.start();
      await waitFor(async () => (await batchRows(s)) === 1 && lost.length > 0, {
        what: 'one batch recorded, a later one published and not recorded',
      });
      assert.ok(
        (await confirmedFlush(s.pool, s.wal.slot)) < min(commitEnds([...recorded, ...lost])),
        'nothing is acknowledged before the crash',
      );
      // The crash: its replication connection goes, the relay does nothing more.
      await s.pool.query('select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1', [s.wal.slot]);
      await waitFor(async () => !(await slotActive(s)), { what: 'the slot free' });

      await next.start();
      await waitFor(async () => (await listedCount(s)) === 100, { what: 'every row listed after the replay' });
      for (const r of await rows(s)) assert.equal(r.listed, 1, `${r.message_id} listed ${r.listed} times`);
      // Every row went out again (nothing was acknowledged); those the dead relay had recorded count as resent.
      sentOnce(replay, ids);
      assert.equal(seen.resent, recorded.length);
      assert.equal(seen.sent, 100 - recorded.length);
      // The duplicates: what the dead relay had published, every one of them counted.
      assert.equal(first.sent.length, recorded.length + lost.length);
      assert.ok(recorded.length > 0 && lost.length > 0);
      await waitFor(async () => (await confirmedFlush(s.pool, s.wal.slot)) >= max(commitEnds([...recorded, ...lost])), {
        what: 'the replay acknowledged',
      });
    } finally {
      await next.stop();
      const stopping = relay.stop();
      for (const reject of crashed) reject(new Error('the relay is gone'));
      await stopping;
      await s.cleanup();
    }
  });

  test('a batch mixing rows of the old default with insert-only ones, its record failing once: both kinds recorded once, in one transaction', async () => {
    const s = await insertOnlySchema();
    // A real failure after the listing's INSERT, in the same transaction: the first update of a state-0
    // row to sent is refused once (a sequence counts across rollbacks).
    await s.pool.query(`
      create sequence "${s.schema}".fault_once;
      create function "${s.schema}".fault_once() returns trigger language plpgsql as $$
      begin
        if nextval('"${s.schema}".fault_once') = 1 then
          raise exception 'injected fault: the row update is refused' using errcode = 'lock_not_available';
        end if;
        return new;
      end $$;
      create trigger fault_once before update on "${s.schema}".outbox
        for each row when (old.state = 0 and new.state = 1) execute function "${s.schema}".fault_once();`);
    const publisher = new ScriptedPublisher();
    const { ledger, calls } = spiedLedger(s.wal.ledger);
    const relay = walRelay(s, publisher, ledger);
    const seen = watch(relay);
    try {
      // One transaction: 20 rows with the old default (inserted before the switch), then 20 for the stream.
      // Being one commit, they are in one batch whatever the timing.
      const outbox = testOutbox({ schema: s.schema, producerId: 'iof' });
      const old: string[] = [];
      const fresh: string[] = [];
      await s.store.transaction(async (tx) => {
        await tx.query(`alter table "${s.schema}".outbox alter column state set default 0`);
        for (let i = 0; i < 20; i++)
          old.push((await outbox.enqueue(tx, { topic: 'orders', key: `k${i % 4}`, type: 't', payload: { i } })).id);
        await tx.query(`alter table "${s.schema}".outbox alter column state set default 1`);
        for (let i = 20; i < 40; i++)
          fresh.push((await outbox.enqueue(tx, { topic: 'orders', key: `k${i % 4}`, type: 't', payload: { i } })).id);
      });
      await relay.start();
      await waitFor(
        async () => {
          const out = await rows(s);
          return out.length === 40 && out.every((r) => r.sent_at !== null || r.listed > 0);
        },
        { what: 'every row recorded' },
      );
      // The record failed once, on the mixed batch, and its retry recorded it.
      assert.deepEqual(
        calls.map((c) => c.outcome),
        ['failed', 'ok'],
      );
      for (const call of calls) {
        assert.equal(call.rows.filter((r) => r.insertOnly === true).length, 20);
        assert.equal(call.rows.filter((r) => r.insertOnly !== true).length, 20);
      }
      assert.equal(seen.errors.length, 1);
      assert.match(seen.errors[0]?.message ?? '', /injected fault/);

      const out = new Map((await rows(s)).map((r) => [r.message_id, r]));
      for (const id of old) {
        const r = out.get(id) as OutboxRow;
        assert.equal(r.state, 1, id);
        assert.ok(r.sent_at !== null, `${id}: recorded on the row`);
        assert.equal(r.listed, 0, `${id}: listed by a batch`);
      }
      for (const id of fresh) {
        const r = out.get(id) as OutboxRow;
        assert.equal(r.state, 1, id);
        assert.equal(r.sent_at, null, id);
        assert.equal(r.updated, false, `${id} was updated`);
        assert.equal(r.listed, 1, `${id} listed ${r.listed} times`);
      }
      // The failed attempt left nothing behind: one batch row, every row counted as sent now, none resent.
      assert.equal(await batchRows(s), 1);
      assert.equal(seen.sent, 40);
      assert.equal(seen.resent, 0);
      sentOnce(publisher, [...old, ...fresh]);
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });
});

describe('switching to the insert-only mode behind a lock', () => {
  test('the ALTER waiting past its lock timeout fails typed, switches nothing and leaves no slot behind; the switch succeeds once the lock is gone', async () => {
    // Two outboxes whose switches wait side by side (5 s lock timeout each, not configurable): one whose slot
    // is made with the switch, one whose slot exists already.
    const fresh = await walSchema(instance.url, { createSlot: false });
    const existing = await walSchema(instance.url);
    const holders: pg.Client[] = [];
    const publisher = new ScriptedPublisher();
    const relay = walRelay(fresh, publisher);
    try {
      // A long reader on each outbox: its lock conflicts with the ALTER's.
      for (const s of [fresh, existing]) {
        const holder = new pg.Client({ connectionString: s.url });
        await holder.connect();
        holders.push(holder);
        await holder.query('begin');
        await holder.query(`select count(*) from "${s.schema}".outbox`);
      }
      const waiting = async (s: WalSchema) =>
        (
          await s.pool.query("select 1 from pg_locks where relation = $1::regclass and mode = 'AccessExclusiveLock' and not granted", [
            `"${s.schema}".outbox`,
          ])
        ).rows.length > 0;
      // One after the other: a slot's creation waits for every transaction with writes running then, and the
      // other switch's would be one.
      const switching: Array<Promise<unknown>> = [];
      for (const s of [fresh, existing]) {
        switching.push(
          s.wal.createSlot('test', { insertOnly: true }).then(
            () => undefined,
            (error: unknown) => error,
          ),
        );
        await waitFor(() => waiting(s), { what: 'the switch waiting for the lock' });
      }
      // An enqueue arriving meanwhile (it queues behind the ALTER) goes in with the old default once the switch failed.
      const enqueued = enqueue(existing, 1, 1);
      const errors = await Promise.all(switching);
      for (const error of errors) {
        assert.ok(error instanceof ZerolossError, `not typed: ${error}`);
        assert.equal(error.code, 'ZL_STORE_CONFLICT');
        assert.equal(error.retryable, true);
        assert.equal(error.details.sqlstate, '55P03');
        // Says what waited and what to look for, not only the driver's "canceling statement due to lock timeout".
        assert.match(error.message, /switching the outbox to the insert-only mode waited 5 s for the outbox's table lock/);
        assert.match(error.message, /transaction that touched the outbox is still open/);
      }
      await enqueued;
      assert.deepEqual(
        (await rows(existing)).map((r) => r.state),
        [0],
      );

      // Nothing switched; the new slot is gone with its hand-over; the existing one is kept under its old record.
      // This outbox's slot's record, under either mode's name (migration 20 records other slots of the database too).
      const records = async (s: WalSchema) =>
        (
          await s.pool.query<{ slot_name: string }>(
            `select slot_name from "${s.schema}".wal_slot where slot_name in ($1, 'insert-only:' || $1)`,
            [s.wal.slot],
          )
        ).rows.map((r) => r.slot_name);
      const slotExists = async (s: WalSchema) =>
        (await s.pool.query('select 1 from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows.length > 0;
      assert.equal(await fresh.wal.insertOnly(), false);
      assert.equal(await existing.wal.insertOnly(), false);
      assert.equal(await slotExists(fresh), false, 'a slot was left without its hand-over');
      assert.deepEqual(await records(fresh), []);
      assert.equal(await slotExists(existing), true);
      assert.deepEqual(await records(existing), [existing.wal.slot]);

      // The readers end: the switch goes through, on both paths.
      for (const holder of holders) await holder.query('commit');
      assert.deepEqual(await fresh.wal.createSlot('test', { insertOnly: true }), { created: true, handedOver: 0, insertOnly: true });
      assert.deepEqual(await existing.wal.createSlot('test', { insertOnly: true }), { created: false, handedOver: 0, insertOnly: true });
      assert.deepEqual(await records(fresh), [`insert-only:${fresh.wal.slot}`]);
      assert.deepEqual(await records(existing), [`insert-only:${existing.wal.slot}`]);
      // And the new slot streams: its rows are inserted for the stream and listed.
      await relay.start();
      const ids = await enqueue(fresh, 10, 2);
      await waitFor(async () => (await listedCount(fresh)) === 10, { what: 'rows of the switched outbox listed' });
      assert.ok((await rows(fresh)).every((r) => r.listed === 1 && r.sent_at === null));
      sentOnce(publisher, ids);
    } finally {
      await relay.stop();
      for (const holder of holders) await holder.end().catch(() => {});
      await fresh.cleanup();
      await existing.cleanup();
    }
  });
});
