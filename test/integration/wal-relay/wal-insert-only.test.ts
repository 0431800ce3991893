import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { HEADER } from '../../../src/core/envelope.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { WalRelay } from '../../../src/outbox/wal-relay.ts';
import type { Publisher } from '../../../src/ports/transport.ts';
import type { WalSent } from '../../../src/ports/wal-stream.ts';
import pg from 'pg';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { databaseWalSlots } from '../../../src/cli/wal-slots.ts';
import { status } from '../../../src/operations/status.ts';
import { insertOnly } from '../../helpers/insert-only.ts';
import { uniqueName } from '../../helpers/pg.ts';
import { rejected, ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';
import { enqueueOrders, type OutboxRow, outboxRows } from './insert-only-rows.ts';

/**
 * The WAL relay on an insert-only outbox (migration 21, docs/wal-relay.md): rows are inserted for the stream
 * (state 1, no sent_at), the relay records what it sent with one `outbox_wal_batch` row per batch and never
 * updates them; failures still go to the polling path on the row; a replayed or out-of-order record lists
 * no row twice and misses none; dropping the slot hands the rows still in the stream to the polling path.
 */
let instance: PostgresInstance;

before(async () => {
  instance = await startWalPostgres('insert-only');
});
after(async () => {
  await instance?.stop('fast');
});

async function insertOnlySchema(): Promise<WalSchema> {
  const s = await walSchema(instance.url, { createSlot: false });
  const made = await s.wal.createSlot('test', { insertOnly: true });
  assert.deepEqual(made, { created: true, handedOver: 0, insertOnly: true });
  return s;
}

function walRelay(s: WalSchema, publisher: Publisher): WalRelay {
  return createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher },
    walBatchSize: 50,
    backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
    maxAttempts: 5,
    pollIntervalMs: 50,
  });
}

const enqueue = (s: WalSchema, count: number, keys: number, from = 0) => enqueueOrders(s, count, keys, from, 'io');
const rows = outboxRows;

/** Per key, the message ids in the order the publisher accepted them. */
function sentOrder(publisher: ScriptedPublisher): Map<string, string[]> {
  const byKey = new Map<string, string[]>();
  for (const r of publisher.sent) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.headers?.[HEADER.id] ?? '']);
  return byKey;
}

describe('WAL relay, insert-only outbox', () => {
  test('every row sent once in key order and listed by exactly one batch row; no outbox row is ever updated', async () => {
    const s = await insertOnlySchema();
    const publisher = new ScriptedPublisher();
    // What reaches the ledger: every row of a whole commit carries its commit's end (replays are looked up by it).
    const handed: WalSent[] = [];
    const record = s.wal.ledger.record;
    const relay = walRelay(
      {
        ...s,
        wal: {
          ...s.wal,
          ledger: {
            ...s.wal.ledger,
            record: (rows, failed, batch) => {
              handed.push(...rows);
              return record(rows, failed, batch);
            },
          },
        },
      },
      publisher,
    );
    let sent = 0;
    let resent = 0;
    relay.on('batch', (b) => {
      sent += b.sent;
      resent += b.resent;
    });
    try {
      await relay.start();
      const ids = await enqueue(s, 300, 7);
      await waitFor(() => sent >= 300, { what: 'every row recorded' });
      const out = await rows(s);
      assert.equal(out.length, 300);
      for (const r of out) {
        assert.equal(r.state, 1, r.message_id);
        assert.equal(r.sent_at, null, r.message_id);
        assert.equal(r.updated, false, `${r.message_id} was updated`);
        assert.equal(r.listed, 1, `${r.message_id} listed ${r.listed} times`);
      }
      assert.equal(publisher.sent.length, 300);
      assert.equal(resent, 0);
      assert.equal(handed.length, 300);
      for (const row of handed) {
        assert.equal(row.insertOnly, true);
        assert.match(row.commitEnd ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
      }
      // Per key, the commit order (ids were enqueued key by key in commit order).
      const expected = new Map<string, string[]>();
      ids.forEach((id, i) => {
        expected.set(`k${i % 7}`, [...(expected.get(`k${i % 7}`) ?? []), id]);
      });
      assert.deepEqual(sentOrder(publisher), expected);
      // Each batch row's partitions and offsets are the publisher's, aligned with its ids.
      const { rows: listed } = await s.pool.query<{ message_id: string; off: string }>(
        `select o.message_id, b.offsets[array_position(b.seq_ids, o.seq_id)]::text as off
         from "${s.schema}".outbox o join "${s.schema}".outbox_wal_batch b on o.seq_id = any(b.seq_ids)`,
      );
      const offsets = new Map(publisher.sent.map((r, i) => [r.headers?.[HEADER.id], String(i)]));
      for (const r of listed) assert.equal(r.off, offsets.get(r.message_id), r.message_id);
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('rows inserted with the old default beside insert-only ones are recorded on the row; a failure takes the polling path in key order', async () => {
    const s = await insertOnlySchema();
    const publisher = new ScriptedPublisher();
    // The first send of k3's first row is refused for good (too large, say): it and k3's later rows go to
    // the polling path, which then sends them in order (the refusal was the first attempt only).
    const refused = new Set<string>();
    publisher.decide = (record) => {
      const id = record.headers?.[HEADER.id] ?? '';
      if (record.key !== 'k3' || refused.size > 0) return undefined;
      refused.add(id);
      return rejected();
    };
    const relay = walRelay(s, publisher);
    try {
      await insertOnly(s.pool, s.schema, false);
      const old = await enqueue(s, 40, 5);
      await insertOnly(s.pool, s.schema, true);
      const fresh = await enqueue(s, 60, 5, 40);
      await relay.start();
      await waitFor(
        async () => {
          const out = await rows(s);
          return out.every((r) => r.state === 1 && (r.sent_at !== null || r.listed === 1));
        },
        { what: 'every row sent' },
      );
      const out = new Map((await rows(s)).map((r) => [r.message_id, r]));
      for (const id of old) {
        const r = out.get(id) as OutboxRow;
        assert.ok(r.sent_at !== null, `${id}: recorded on the row`);
        assert.equal(r.listed, 0);
      }
      for (const id of fresh) {
        const r = out.get(id) as OutboxRow;
        if (r.msg_key === 'k3') {
          // Failed or held back: the polling path sent it and recorded it on the row.
          assert.ok(r.sent_at !== null, `${id}: sent by the polling path`);
          assert.equal(r.listed, 0);
        } else {
          assert.equal(r.sent_at, null);
          assert.equal(r.listed, 1, `${id} listed once`);
        }
      }
      // Key order holds across the stream and the polling path, and nothing went out twice.
      const all = [...old, ...fresh];
      const expected = new Map<string, string[]>();
      for (const id of all) {
        const key = (out.get(id) as OutboxRow).msg_key;
        expected.set(key, [...(expected.get(key) ?? []), id]);
      }
      assert.deepEqual(sentOrder(publisher), expected);
      assert.equal(publisher.sent.length, 100);
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('a replayed batch lists no row twice and counts it as resent; a batch recorded after a later one still lists its rows', async () => {
    const s = await insertOnlySchema();
    try {
      await enqueue(s, 4, 4);
      const { rows: ids } = await s.pool.query<{ seq_id: string }>(`select seq_id::text from "${s.schema}".outbox order by seq_id`);
      const [a, b, c, d] = ids.map((r) => r.seq_id) as [string, string, string, string];
      const row = (ref: string, offset: number, commitEnd: string) => ({
        ref,
        partition: 0,
        offset: BigInt(offset),
        insertOnly: true,
        commitEnd,
      });
      // The later batch is recorded first (batches record side by side): the earlier one's commits end
      // before what the slot has recorded, so its rows are looked up, found unlisted, and listed.
      assert.deepEqual(await s.wal.ledger.record([row(c, 2, '0/3000'), row(d, 3, '0/4000')], [], { endLsn: '0/4000' }), { sent: 2 });
      assert.deepEqual(await s.wal.ledger.record([row(a, 0, '0/1000'), row(b, 1, '0/2000')], [], { endLsn: '0/2000' }), { sent: 2 });
      // A replay of both (a crash before the acknowledgement): resent, not listed again.
      assert.deepEqual(
        await s.wal.ledger.record([row(a, 10, '0/1000'), row(b, 11, '0/2000'), row(c, 12, '0/3000'), row(d, 13, '0/4000')], [], {
          endLsn: '0/4000',
        }),
        { sent: 0 },
      );
      const out = await rows(s);
      assert.deepEqual(
        out.map((r) => r.listed),
        [1, 1, 1, 1],
      );
      // A failure of a row a batch lists already (the replay failed where the first send had not) leaves it sent.
      await s.wal.ledger.record([], [{ ref: a, error: 'late failure', delayMs: 0, charge: true, heldBack: false }], { endLsn: '0/4000' });
      assert.equal((await rows(s))[0]?.state, 1);
    } finally {
      await s.cleanup();
    }
  });

  test('dropping the slot hands rows still in the stream to the polling path; a new slot hands over those no batch lists', async () => {
    // Another schema's slot, which migration 20 records in this schema's wal_slot too: not one of this outbox's.
    const other = new pg.Client({ connectionString: instance.url });
    await other.connect();
    const otherSlot = uniqueName('zlo');
    await other.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [otherSlot]);
    const s = await insertOnlySchema().finally(async () => {
      await other.query('select pg_drop_replication_slot($1)', [otherSlot]);
      await other.end();
    });
    try {
      await enqueue(s, 5, 5);
      assert.equal(await s.wal.dropSlot('test'), true);
      assert.equal(await s.wal.insertOnly(), false);
      assert.deepEqual(
        (await rows(s)).map((r) => r.state),
        [2, 2, 2, 2, 2],
      );

      // Insert-only again; one of three new rows is recorded, then the slot is lost (dropped behind the
      // relay's back, the default left as it was): the next slot hands over the two no batch lists.
      assert.equal((await s.wal.createSlot('test', { insertOnly: true })).insertOnly, true);
      await s.pool.query(`update "${s.schema}".outbox set state = 1, sent_at = now()`);
      await enqueue(s, 3, 3, 5);
      const { rows: fresh } = await s.pool.query<{ seq_id: string }>(
        `select seq_id::text from "${s.schema}".outbox where sent_at is null order by seq_id`,
      );
      await s.wal.ledger.record([{ ref: fresh[0]?.seq_id as string, partition: 0, offset: 0n, insertOnly: true, commitEnd: '0/1' }], [], {
        endLsn: '0/1',
      });
      // Dropped behind the relay's back (as a lost slot is made anew): its record stays.
      await s.pool.query('select pg_drop_replication_slot($1)', [s.wal.slot]);
      const again = await s.wal.createSlot('test');
      assert.equal(again.created, true);
      assert.equal(again.handedOver, 2);
      assert.equal(again.insertOnly, true, 'the mode is kept unless asked');
      const states = (await rows(s)).slice(5).map((r) => [r.state, r.listed]);
      assert.deepEqual(states, [
        [1, 1],
        [2, 0],
        [2, 0],
      ]);
    } finally {
      await s.cleanup();
    }
  });
});

describe('switching the insert-only mode', () => {
  test('relays of a release before the mode find no record of the slot and stand by; the switch waits until nobody reads the slot', async () => {
    const s = await walSchema(instance.url);
    const relay = walRelay(s, new ScriptedPublisher());
    try {
      // The check a relay of the previous release runs when it opens the slot (811a99c, wal-sql.ts).
      const oldCheck = `select exists (select 1 from "${s.schema}".wal_slot where slot_name = $1) as recorded`;
      assert.equal((await s.pool.query(oldCheck, [s.wal.slot])).rows[0]?.recorded, true);
      await relay.start();
      await waitFor(
        async () => (await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active,
      );
      await assert.rejects(s.wal.createSlot('test', { insertOnly: true }), { code: 'ZL_INVALID_CONFIG', message: /being read/ });
      assert.equal(await s.wal.insertOnly(), false);
      await relay.stop();
      await waitFor(
        async () => !(await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active,
      );
      assert.equal((await s.wal.createSlot('test', { insertOnly: true })).insertOnly, true);
      assert.equal((await s.pool.query(oldCheck, [s.wal.slot])).rows[0]?.recorded, false, 'an older relay stands by');
      // This release's relay streams it.
      const publisher = new ScriptedPublisher();
      const next = walRelay(s, publisher);
      try {
        await next.start();
        await enqueue(s, 10, 2);
        await waitFor(() => publisher.sent.length >= 10, { what: 'the new relay streaming' });
      } finally {
        await next.stop();
      }
      // The server lets the stopped relay's reading go a moment later; until then the slot still shows as read
      // (by it), and the relay started next would stand by while the check below passed on the old reading.
      await waitFor(
        async () => !(await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active,
        { what: "the stopped relay's reading to end" },
      );
      // Dropping the slot while it is read is refused, and changes nothing.
      await assert.rejects(
        (async () => {
          await relay.start();
          await waitFor(
            async () => (await s.pool.query('select active from pg_replication_slots where slot_name = $1', [s.wal.slot])).rows[0]?.active,
          );
          await s.wal.dropSlot('test');
        })(),
        { code: 'ZL_INVALID_CONFIG', message: /being read/ },
      );
      assert.equal(await s.wal.insertOnly(), true);
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('--drop-slot of a slot that is not there leaves the mode while another slot is recorded', async () => {
    const s = await insertOnlySchema();
    try {
      await enqueue(s, 3, 3);
      const typo = postgresWal(s.store, { url: s.url, slot: 'zeroloss_no_such_slot' });
      assert.equal(await typo.dropSlot('test'), false);
      assert.equal(await s.wal.insertOnly(), true);
      assert.deepEqual(
        (await rows(s)).map((r) => r.state),
        [1, 1, 1],
      );
    } finally {
      await s.cleanup();
    }
  });

  test('--drop-slot hands over the rows of an enqueue it waited for, whatever the database default isolation', async () => {
    const s = await insertOnlySchema();
    const database = (await s.pool.query<{ db: string }>('select current_database() as db')).rows[0]?.db as string;
    const writer = await s.pool.connect();
    const stores: Array<ReturnType<typeof postgres>> = [];
    try {
      await s.pool.query(`alter database "${database}" set default_transaction_isolation = 'repeatable read'`);
      // New sessions take the database's default: a store opened now.
      const store = postgres(s.url, { schema: s.schema });
      stores.push(store);
      assert.equal(
        (await store.db.query<{ i: string }>("select current_setting('transaction_isolation') as i")).rows[0]?.i,
        'repeatable read',
      );
      await writer.query('begin');
      await testOutbox({ schema: s.schema, producerId: 'io' }).enqueue(writer, { topic: 'orders', key: 'k', type: 't', payload: {} });
      const dropping = postgresWal(store, { url: s.url }).dropSlot('test');
      // The drop waits for the open enqueue (its ALTER needs the table), then must see its row.
      await waitFor(
        async () =>
          (
            await s.pool.query("select 1 from pg_locks where relation = $1::regclass and mode = 'AccessExclusiveLock' and not granted", [
              `"${s.schema}".outbox`,
            ])
          ).rows.length > 0,
        { what: 'the drop waiting for the enqueue' },
      );
      await writer.query('commit');
      assert.equal(await dropping, true);
      assert.deepEqual(
        (await rows(s)).map((r) => r.state),
        [2],
      );
    } finally {
      writer.release();
      for (const store of stores) await store.close();
      await s.pool.query(`alter database "${database}" reset default_transaction_isolation`);
      await s.cleanup();
    }
  });

  test('a polling relay refuses an insert-only outbox, loudly, and polls it once the mode is left', async () => {
    const s = await insertOnlySchema();
    try {
      await enqueue(s, 2, 2);
      await assert.rejects(s.store.relaySource.anyDue?.() ?? Promise.resolve(), { code: 'ZL_INVALID_CONFIG', message: /insert-only/ });
      await assert.rejects(s.store.relaySource.claim('o', 10, 1_000), { code: 'ZL_INVALID_CONFIG', message: /insert-only/ });
      await s.wal.dropSlot('test');
      const fresh = postgres(s.url, { schema: s.schema });
      try {
        assert.equal((await fresh.relaySource.claim('o', 10, 1_000)).length, 2);
      } finally {
        await fresh.close();
      }
    } finally {
      await s.cleanup();
    }
  });

  test('status names the mode, and warns while no relay reads a slot (the rows wait: the polling relay refuses them)', async () => {
    const s = await insertOnlySchema();
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    const relay = walRelay(s, new ScriptedPublisher());
    try {
      await enqueue(s, 3, 3);
      const idle = await status({ store: ops, walSlots: databaseWalSlots(s.store.db) });
      assert.equal(idle.outbox.insertOnly, true);
      assert.equal(idle.outbox.pending, 3);
      assert.ok(
        idle.warnings.some((w) =>
          /the outbox is insert-only: its rows are sent only by a WAL relay reading its slot.*\(3 pending\)/.test(w),
        ),
        idle.warnings.join('\n'),
      );
      await relay.start();
      await waitFor(async () => (await ops.outboxSummary(60_000)).pending === 0, { what: 'the rows sent' });
      await waitFor(async () => (await databaseWalSlots(s.store.db)()).some((x) => x.slot === s.wal.slot && x.active), {
        what: 'the slot read',
      });
      const reading = await status({ store: ops, walSlots: databaseWalSlots(s.store.db) });
      assert.deepEqual(
        reading.warnings.filter((w) => w.includes('insert-only')),
        [],
      );
    } finally {
      await relay.stop();
      await s.cleanup();
    }
    // The mode left with the slot: nothing to warn about, whatever slots there are.
    const plain = await walSchema(instance.url, { createSlot: false });
    try {
      const ops = new PostgresOperationsStore(plain.store.db, { schema: plain.schema });
      const st = await status({ store: ops, walSlots: databaseWalSlots(plain.store.db) });
      assert.equal(st.outbox.insertOnly, false);
      assert.deepEqual(
        st.warnings.filter((w) => w.includes('insert-only')),
        [],
      );
    } finally {
      await plain.cleanup();
    }
  });
});
