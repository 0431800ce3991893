import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { type PostgresWalShards, postgresWalShards } from '../../../src/adapters/postgres/wal/postgres-wal-shards.ts';
import { HEADER } from '../../../src/core/envelope.ts';
import { walShardOf } from '../../../src/core/wal-shard.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { ShardedWalRelay } from '../../../src/outbox/wal-sharded-relay.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import type { WalShardSet } from '../../../src/ports/wal-shards.ts';
import type { WalStreamHandler } from '../../../src/ports/wal-stream.ts';
import { ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { beforeEachStatement, confirmedFlush, startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * WAL shards on an insert-only outbox (docs/wal-relay.md, Shards and the insert-only mode): the mode is
 * switched by `createShards(n, actor, { insertOnly: true })`, each shard's relay records what it sent with one
 * `outbox_wal_batch` row per batch under its own slot, and never updates an outbox row; a takeover's replay
 * lists no row twice; `dropShards` leaves the mode and hands the rows still in the streams to the polling
 * path; a shard-count change keeps the mode; the switch waits until no shard's slot is read.
 */
let instance: PostgresInstance;

before(async () => {
  instance = await startWalPostgres('shards-io');
});
after(async () => {
  await instance?.stop('fast');
});

/** Fast membership for tests: a look every 100 ms, an unread shard taken after 300 ms. */
const SHARDING = { checkIntervalMs: 100, memberTimeoutMs: 3_000, orphanGraceMs: 300 };

function shardedRelay(set: WalShardSet, publisher: Publisher): ShardedWalRelay {
  return createRelay({
    mode: 'wal',
    wal: set,
    transport: { publisher },
    walBatchSize: 50,
    standbyRetryMs: 100,
    sharding: SHARDING,
    backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
    maxAttempts: 5,
    pollIntervalMs: 50,
  });
}

/** Rows listed (sent) and rows counted as resent, from a relay's `batch` events. */
function counted(relay: ShardedWalRelay): { sent: number; resent: number } {
  const c = { sent: 0, resent: 0 };
  relay.on('batch', (b) => {
    c.sent += b.sent;
    c.resent += b.resent;
  });
  return c;
}

/**
 * The shard set as a relay that dies between recording a batch and acknowledging it sees it: its
 * acknowledgements never reach the server, and it never says it is caught up (an idle session confirms the
 * keepalive's position otherwise). Whoever reads a slot next replays everything this relay recorded.
 */
function unacknowledging(set: PostgresWalShards): WalShardSet {
  return {
    ...set,
    open(shard, holder) {
      const opened = set.open(shard, holder);
      return {
        ledger: opened.ledger,
        stream: {
          slot: opened.stream.slot,
          async open(handler: WalStreamHandler) {
            const session = await opened.stream.open({
              get partRows() {
                return handler.partRows;
              },
              commit: (c) => handler.commit(c),
              end: (e) => handler.end(e),
              caughtUp: () => false,
            });
            return {
              acknowledge: async () => {},
              pause: () => session.pause(),
              resume: () => session.resume(),
              close: () => session.close(),
            };
          },
        },
      };
    },
  };
}

/** `count` messages over `keys` keys, 10 per transaction (several keys each); resolves to their ids in commit order. */
async function enqueue(s: WalSchema, count: number, keys: number, from = 0): Promise<string[]> {
  const outbox = testOutbox({ schema: s.schema, producerId: 'sio' });
  const ids: string[] = [];
  for (let t = from; t < from + count; t += 10) {
    const made = await s.store.transaction(async (tx) => {
      const out: string[] = [];
      for (let i = t; i < Math.min(from + count, t + 10); i++) {
        out.push((await outbox.enqueue(tx, { topic: 'orders', key: `k${i % keys}`, type: 'order.placed', payload: { i } })).id);
      }
      return out;
    });
    ids.push(...made);
  }
  return ids;
}

interface Row {
  seq_id: string;
  message_id: string;
  msg_key: string;
  state: number;
  sent_at: Date | null;
  last_error: string | null;
  updated: boolean;
  listed: number;
}

/** Each outbox row in seq_id order, with how many batch rows list it and whether anything ever updated it. */
async function rows(s: WalSchema): Promise<Row[]> {
  const { rows: out } = await s.pool.query<Row>(
    `select o.seq_id::text, o.message_id, o.msg_key, o.state, o.sent_at, o.last_error, o.modified_time <> o.created_at as updated,
       (select count(*)::int from "${s.schema}".outbox_wal_batch b where o.seq_id = any(b.seq_ids)) as listed
     from "${s.schema}".outbox o order by o.seq_id`,
  );
  return out;
}

/** How many outbox rows some batch lists. */
async function listedCount(s: WalSchema): Promise<number> {
  const { rows: out } = await s.pool.query<{ n: number }>(
    `select count(*)::int as n from "${s.schema}".outbox o
     where exists (select 1 from "${s.schema}".outbox_wal_batch b where o.seq_id = any(b.seq_ids))`,
  );
  return Number(out[0]?.n ?? 0);
}

/** Every row inserted for the stream is listed by exactly one batch row, and no outbox row was updated. */
function assertListedOnce(out: Row[], count: number): void {
  assert.equal(out.length, count);
  for (const r of out) {
    assert.equal(r.state, 1, `${r.message_id} state`);
    assert.equal(r.sent_at, null, `${r.message_id}: sent_at set (recorded on the row, not in a batch)`);
    assert.equal(r.updated, false, `${r.message_id} was updated`);
    assert.equal(r.listed, 1, `${r.message_id} listed ${r.listed} times`);
  }
}

/** Each batch row lists only rows of its own slot's shard (`since`: batch ids above it only). */
async function assertBatchesByShard(s: WalSchema, shards: number, since = '0'): Promise<number> {
  const { rows: out } = await s.pool.query<{ slot: string; msg_key: string }>(
    `select b.slot, o.msg_key from "${s.schema}".outbox_wal_batch b join "${s.schema}".outbox o on o.seq_id = any(b.seq_ids)
     where b.id > $1::bigint`,
    [since],
  );
  for (const r of out) assert.equal(r.slot, `zeroloss_${s.schema}_s${walShardOf(r.msg_key, shards)}`, `${r.msg_key} under ${r.slot}`);
  return out.length;
}

async function lastBatchId(s: WalSchema): Promise<string> {
  return String((await s.pool.query(`select coalesce(max(id), 0)::text as id from "${s.schema}".outbox_wal_batch`)).rows[0].id);
}

/** Per key, the message ids in the order the publisher first accepted them, and how many it accepted again. */
function sentOrder(publisher: ScriptedPublisher): { byKey: Map<string, string[]>; duplicates: number } {
  const byKey = new Map<string, string[]>();
  const seen = new Set<string>();
  let duplicates = 0;
  for (const r of publisher.sent) {
    const id = r.headers?.[HEADER.id] ?? '';
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    byKey.set(r.key, [...(byKey.get(r.key) ?? []), id]);
  }
  return { byKey, duplicates };
}

/** Per key, the ids of `out` (seq_id order, which is each key's commit order). */
function commitOrder(out: Row[]): Map<string, string[]> {
  const byKey = new Map<string, string[]>();
  for (const r of out) byKey.set(r.msg_key, [...(byKey.get(r.msg_key) ?? []), r.message_id]);
  return byKey;
}

/** The slots' records (wal_slot, migration 20) of this schema's shards, as stored. */
async function slotRecords(s: WalSchema): Promise<string[]> {
  const { rows: out } = await s.pool.query<{ slot_name: string }>(
    `select slot_name from "${s.schema}".wal_slot where slot_name like $1 order by slot_name`,
    [`%zeroloss_${s.schema}_s%`],
  );
  return out.map((r) => r.slot_name);
}

const slotNames = (s: WalSchema, n: number) => Array.from({ length: n }, (_, i) => `zeroloss_${s.schema}_s${i}`);

/** No slot of `set` is read any more (relays stopped, their walsenders gone). */
async function unread(set: WalShardSet): Promise<void> {
  await waitFor(async () => (await set.list()).every((x) => !x.active), { what: 'no shard read', timeoutMs: 15_000 });
}

describe('WAL shards, insert-only outbox', () => {
  test('createShards(2, { insertOnly }) switches the mode; two relays share the shards; every row listed by exactly one batch of its shard, none updated, key order; status shows nothing pending', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const set = postgresWalShards(s.store, { url: s.url });
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    const publisher = new ScriptedPublisher();
    const a = shardedRelay(set, publisher);
    const b = shardedRelay(set, publisher);
    const byA = counted(a);
    const byB = counted(b);
    try {
      assert.deepEqual(await set.createShards(2, 'test', { insertOnly: true }), { created: slotNames(s, 2), handedOver: 0, dropped: [] });
      assert.equal(await s.wal.insertOnly(), true, 'the state default is 1');
      // Relays of a release before the mode look for the plain names and stand by.
      assert.deepEqual(
        await slotRecords(s),
        slotNames(s, 2).map((x) => `insert-only:${x}`),
      );

      // Before any relay reads: every row is in a stream, and status counts it as pending.
      const first = await enqueue(s, 100, 40);
      assert.equal((await ops.outboxSummary(300_000)).pending, 100);
      assert.deepEqual(
        (await rows(s)).map((r) => [r.state, r.sent_at]),
        first.map(() => [1, null]),
        'inserted for the stream',
      );

      await a.start();
      await waitFor(() => a.holding.length === 2, { what: 'relay a reading both shards', timeoutMs: 15_000 });
      // Writers commit while b joins and a hands it a shard (a clean stop of that shard's reader).
      const writing = enqueue(s, 250, 40, 100);
      await b.start();
      await waitFor(async () => a.holding.length === 1 && b.holding.length === 1, { what: 'one shard each', timeoutMs: 15_000 });
      await writing;
      await enqueue(s, 250, 40, 350);
      await waitFor(async () => byA.sent + byB.sent >= 600 && (await listedCount(s)) === 600, {
        what: 'every row listed',
        timeoutMs: 20_000,
      });

      const out = await rows(s);
      assertListedOnce(out, 600);
      assert.equal(await assertBatchesByShard(s, 2), 600);
      // Both relays recorded batches; nothing was listed or sent twice.
      assert.ok(byA.sent > 0 && byB.sent > 0, `a listed ${byA.sent}, b ${byB.sent}`);
      assert.deepEqual({ sent: byA.sent + byB.sent, resent: byA.resent + byB.resent }, { sent: 600, resent: 0 });
      const { byKey, duplicates } = sentOrder(publisher);
      assert.equal(duplicates, 0);
      assert.equal(publisher.sent.length, 600);
      assert.deepEqual(byKey, commitOrder(out), 'per key, commit order');
      // Readers derive the state: nothing pending, nothing unsent.
      const summary = await ops.outboxSummary(300_000);
      assert.deepEqual([summary.pending, summary.failed, summary.parked], [0, 0, 0]);
      assert.equal(
        (await ops.unsentByTopic()).reduce((n, t) => n + t.unsent, 0),
        0,
      );
    } finally {
      await a.stop();
      await b.stop();
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('a relay stops mid-stream without having confirmed: the other replays its shards, lists no row twice (resent instead), misses none', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const set = postgresWalShards(s.store, { url: s.url });
    const publisher = new ScriptedPublisher();
    // a records its batches but its confirmations never reach the server (a crash between the two).
    const a = shardedRelay(unacknowledging(set), publisher);
    const b = shardedRelay(set, publisher);
    const byA = counted(a);
    const byB = counted(b);
    try {
      await set.createShards(2, 'test', { insertOnly: true });
      const [s0, s1] = slotNames(s, 2) as [string, string];
      const created = [await confirmedFlush(s.pool, s0), await confirmedFlush(s.pool, s1)];
      await a.start();
      await waitFor(() => a.holding.length === 2, { what: 'relay a reading both shards', timeoutMs: 15_000 });
      await enqueue(s, 200, 30);
      await waitFor(async () => (await listedCount(s)) === 200, { what: 'a listing the first rows', timeoutMs: 20_000 });
      assert.deepEqual(
        [await confirmedFlush(s.pool, s0), await confirmedFlush(s.pool, s1)],
        created,
        'nothing confirmed: the next reader replays it all',
      );

      // More writers; b joins, is handed a shard, and a stops while they commit: b reads both and replays.
      const writing = enqueue(s, 300, 30, 200);
      await b.start();
      await waitFor(async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox`)).rows[0].n >= 300, {
        what: 'the writers under way',
        timeoutMs: 20_000,
        intervalMs: 5,
      });
      await a.stop();
      await waitFor(() => b.holding.length === 2, { what: 'b reading both shards', timeoutMs: 15_000 });
      await writing;
      // b read both slots from where they were created: every row comes to it, fresh or replayed.
      await waitFor(async () => byB.sent + byB.resent >= 500 && (await listedCount(s)) === 500, {
        what: 'b recording every row',
        timeoutMs: 20_000,
      });

      const out = await rows(s);
      assertListedOnce(out, 500);
      assert.equal(await assertBatchesByShard(s, 2), 500);
      // Every row a listed came again to b (the slots were never confirmed): resent, not listed again.
      assert.ok(byA.sent >= 200, `a listed ${byA.sent}`);
      assert.equal(byA.resent, 0);
      assert.equal(byB.resent, byA.sent, 'b counts each of a’s rows as resent once');
      assert.deepEqual({ listed: byA.sent + byB.sent, seenByB: byB.sent + byB.resent }, { listed: 500, seenByB: 500 });
      const { byKey, duplicates } = sentOrder(publisher);
      assert.equal(duplicates, byA.sent, 'the replay went out again (duplicates, as after a crash)');
      assert.deepEqual(byKey, commitOrder(out), 'per key, commit order');
      // b confirms what it recorded (the server takes the confirmation a moment after the record).
      await waitFor(
        async () =>
          (await confirmedFlush(s.pool, s0)) > (created[0] as bigint) && (await confirmedFlush(s.pool, s1)) > (created[1] as bigint),
        { what: 'b confirming both slots' },
      );
    } finally {
      await a.stop();
      await b.stop();
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('dropShards leaves the mode and hands the rows still in the streams to the polling path, which sends them in key order; listed rows stay as they are', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const set = postgresWalShards(s.store, { url: s.url });
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    const publisher = new ScriptedPublisher();
    const relay = shardedRelay(set, publisher);
    const polling = createRelay({
      store: s.store,
      transport: { publisher },
      pollIntervalMs: 50,
      backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
    });
    try {
      await set.createShards(2, 'test', { insertOnly: true });
      await relay.start();
      await enqueue(s, 100, 10);
      await waitFor(async () => (await listedCount(s)) === 100, { what: 'the streamed rows listed', timeoutMs: 20_000 });
      await relay.stop();
      await unread(set);
      // Still in the streams: nobody reads them now.
      await enqueue(s, 60, 10, 100);
      assert.equal((await ops.outboxSummary(300_000)).pending, 60);

      assert.deepEqual(await set.dropShards('test'), slotNames(s, 2));
      assert.equal(await s.wal.insertOnly(), false, 'the state default is 0 again');
      assert.deepEqual(await set.list(), []);
      assert.deepEqual(await slotRecords(s), []);
      const { rows: left } = await s.pool.query(
        `select slot_name from pg_replication_slots where slot_name like $1
         union all select pubname from pg_publication where pubname like $1`,
        [`zeroloss_${s.schema}_%`],
      );
      assert.deepEqual(left, []);
      const dropped = await rows(s);
      assertListedOnce(dropped.slice(0, 100), 100);
      for (const r of dropped.slice(100)) {
        assert.deepEqual(
          [r.state, r.listed, r.last_error],
          [2, 0, 'handed to the polling path when the WAL slot was dropped'],
          `${r.message_id} handed over`,
        );
      }
      const { rows: transitions } = await s.pool.query(
        `select count(*)::int as n from "${s.schema}".outbox_transition where actor = 'test' and to_state = 2`,
      );
      assert.equal(transitions[0].n, 60);
      // New rows go to the polling path too.
      await enqueue(s, 40, 10, 160);
      assert.deepEqual(
        (await rows(s)).slice(160).map((r) => r.state),
        Array(40).fill(0),
      );

      await polling.start();
      await waitFor(async () => (await rows(s)).slice(100).every((r) => r.state === 1 && r.sent_at !== null), {
        what: 'the polling relay sending the handed-over and new rows',
        timeoutMs: 20_000,
      });
      const out = await rows(s);
      assertListedOnce(out.slice(0, 100), 100);
      for (const r of out.slice(100)) assert.equal(r.listed, 0, `${r.message_id} sent on the row, not listed`);
      const { byKey, duplicates } = sentOrder(publisher);
      assert.equal(duplicates, 0);
      assert.equal(publisher.sent.length, 200, 'none lost, none twice');
      assert.deepEqual(byKey, commitOrder(out), 'per key, the stream then the polling path, in commit order');
      assert.equal((await ops.outboxSummary(300_000)).pending, 0);
    } finally {
      await polling.stop();
      await relay.stop();
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('a shard-count change keeps the mode: refused while rows are still in the streams, then 2 to 3 shards, a row committed between the drop and the new slots handed over', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    // The row a writer commits while the count changes: after the old slots are gone, before the new ones exist
    // (a key of its own: a handed-over row holds its key's later rows back, which is not what is tested here).
    let between: string | undefined;
    const outbox = testOutbox({ schema: s.schema, producerId: 'sio' });
    const db = beforeEachStatement(s.store.db, async (sql) => {
      if (between === '' && sql.startsWith('create publication')) {
        between = (await s.store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'between', type: 'between', payload: {} })))
          .id;
      }
    });
    const set = postgresWalShards({ ...s.store, db }, { url: s.url });
    const publisher = new ScriptedPublisher();
    const two = shardedRelay(set, publisher);
    const three = shardedRelay(set, publisher);
    try {
      await set.createShards(2, 'test', { insertOnly: true });
      await two.start();
      await enqueue(s, 100, 12);
      await waitFor(async () => (await listedCount(s)) === 100, { what: 'the first rows listed', timeoutMs: 20_000 });
      await two.stop();
      await unread(set);
      // Rows in the streams (state 1, listed by no batch) are unsent: the count would move their keys.
      await enqueue(s, 10, 12, 100);
      await assert.rejects(set.createShards(3, 'test'), { code: 'ZL_INVALID_CONFIG', message: /drained outbox.*now: 10 unsent/s });
      assert.equal((await set.list()).length, 2);
      await two.start();
      await waitFor(async () => (await listedCount(s)) === 110, { what: 'the streams drained', timeoutMs: 20_000 });
      await two.stop();
      await unread(set);

      between = '';
      const changed = await set.createShards(3, 'test');
      assert.ok(between, 'a row was committed between the drop and the new slots');
      assert.deepEqual(changed, { created: slotNames(s, 3), handedOver: 1, dropped: slotNames(s, 2) });
      assert.equal(await s.wal.insertOnly(), true, 'the mode is kept');
      assert.deepEqual(
        await slotRecords(s),
        slotNames(s, 3).map((x) => `insert-only:${x}`),
      );
      assert.deepEqual(
        (await set.list()).map((x) => [x.shard, x.shards, x.exists]),
        [
          [0, 3, true],
          [1, 3, true],
          [2, 3, true],
        ],
      );
      const gap = (await rows(s)).find((r) => r.message_id === between) as Row;
      assert.deepEqual([gap.state, gap.listed], [2, 0], 'in no stream: handed to the polling path');

      const since = await lastBatchId(s);
      await three.start();
      await enqueue(s, 150, 12, 110);
      await waitFor(async () => (await listedCount(s)) === 260, { what: 'the rows after the change listed', timeoutMs: 20_000 });
      await waitFor(async () => (await rows(s)).find((r) => r.message_id === between)?.sent_at, {
        what: 'the polling path sending the handed-over row',
        timeoutMs: 20_000,
      });
      const out = await rows(s);
      assertListedOnce(
        out.filter((r) => r.message_id !== between),
        260,
      );
      assert.equal(await assertBatchesByShard(s, 3, since), 150, 'batches after the change follow the new count');
      const { byKey, duplicates } = sentOrder(publisher);
      assert.equal(duplicates, 0);
      assert.equal(publisher.sent.length, 261);
      assert.deepEqual(byKey, commitOrder(out), 'per key, commit order');
    } finally {
      await two.stop();
      await three.stop();
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  test('the switch is refused while any shard’s slot is read (relays of an earlier release); once none is, it switches and rows of both defaults are sent', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const set = postgresWalShards(s.store, { url: s.url });
    const publisher = new ScriptedPublisher();
    await set.createShards(2, 'test');
    const [s0, s1] = slotNames(s, 2) as [string, string];
    // One shard read (shard 1 only), as a relay of an earlier release would.
    const shard1 = (await set.list())[1];
    assert.ok(shard1);
    const reader = createRelay({ mode: 'wal', wal: set.open(shard1, 'older-relay'), transport: { publisher }, standbyRetryMs: 100 });
    const relay = shardedRelay(set, publisher);
    try {
      await reader.start();
      await waitFor(async () => (await set.list())[1]?.holder === 'older-relay', { what: 'shard 1 read' });
      const before = await enqueue(s, 20, 8);
      await assert.rejects(
        set.createShards(2, 'test', { insertOnly: true }),
        (error: { code?: string; message: string; details?: unknown }) => {
          assert.equal(error.code, 'ZL_INVALID_CONFIG');
          assert.match(error.message, /being read/);
          assert.deepEqual(error.details, { slots: [s1], field: 'insert-only' });
          return true;
        },
      );
      assert.equal(await s.wal.insertOnly(), false, 'not switched');
      assert.deepEqual(await slotRecords(s), [s0, s1], 'an earlier release still finds its records');
      // Nor by a count change asking for it.
      await assert.rejects(set.createShards(3, 'test', { insertOnly: true }), { code: 'ZL_INVALID_CONFIG', message: /being read/ });
      assert.equal(await s.wal.insertOnly(), false);

      await reader.stop();
      await unread(set);
      assert.deepEqual(await set.createShards(2, 'test', { insertOnly: true }), { created: [], handedOver: 0, dropped: [] });
      assert.equal(await s.wal.insertOnly(), true);
      assert.deepEqual(await slotRecords(s), [`insert-only:${s0}`, `insert-only:${s1}`]);

      // This release's relays stream both kinds: rows of the old default recorded on the row, new ones listed.
      await relay.start();
      const after = await enqueue(s, 40, 8, 20);
      await waitFor(async () => (await rows(s)).every((r) => r.state === 1 && (r.sent_at !== null || r.listed === 1)), {
        what: 'every row sent',
        timeoutMs: 20_000,
      });
      // Asked again while read: already on, nothing to switch, not refused.
      await waitFor(() => relay.holding.length === 2, { what: 'both shards read' });
      assert.deepEqual(await set.createShards(2, 'test', { insertOnly: true }), { created: [], handedOver: 0, dropped: [] });
      const out = new Map((await rows(s)).map((r) => [r.message_id, r]));
      for (const id of before) assert.deepEqual([out.get(id)?.sent_at !== null, out.get(id)?.listed], [true, 0], `${id}: on the row`);
      assertListedOnce(
        after.map((id) => out.get(id) as Row),
        40,
      );
      const { byKey, duplicates } = sentOrder(publisher);
      assert.equal(duplicates, 0);
      assert.deepEqual(byKey, commitOrder([...out.values()]));
      // Dropping while read is refused and changes nothing.
      await assert.rejects(set.dropShards('test'), { code: 'ZL_INVALID_CONFIG', message: /being read/ });
      assert.equal(await s.wal.insertOnly(), true);
      assert.equal((await set.list()).length, 2);
    } finally {
      await reader.stop();
      await relay.stop();
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });

  // createShards refuses shards while the single slot exists; createSlot did not look at the shards and made
  // the single slot beside them. Both then streamed every row; in the insert-only mode each relay listed it
  // under its own slot (the replay lookup is per slot): every row sent twice, listed by two batch rows.
  test('the single slot is refused beside shards, as shards are beside the single slot', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const set = postgresWalShards(s.store, { url: s.url });
    try {
      await set.createShards(2, 'test', { insertOnly: true });
      await assert.rejects(s.wal.createSlot('test'), { code: 'ZL_INVALID_CONFIG' });
      const { rows: single } = await s.pool.query('select 1 from pg_replication_slots where slot_name = $1', [s.wal.slot]);
      assert.equal(single.length, 0, 'no single slot beside the shards');
    } finally {
      await set.dropShards().catch(() => {});
      await s.cleanup();
    }
  });
});
