import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import type { PgWalStream } from '../../../src/adapters/postgres/wal/pg-wal-stream.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { WalSent } from '../../../src/ports/wal-stream.ts';
import { ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { enqueueOrders, outboxRows } from './insert-only-rows.ts';
import { beforeEachStatement, startWalPostgres, type WalSchema, walSchema } from './wal-postgres.ts';

/**
 * A row the stream brings after another path recorded it sent (the ack-vs-state repair, P5; a resend) or
 * took it (handed to the polling path) counts once as sent. The insert-only mode's batch listing counted
 * every fresh row of the stream as a first send without looking at the row: a row a repair had marked sent
 * (a relay died between the broker's answer and its record, reconcile found the message on the broker, and
 * the next relay streamed the row again) had two transitions to sent (the repair's and the batch's), so
 * zeroloss_outbox_transitions_total counted it twice, and the listing named it although the row said sent.
 * Now the later copy is counted as resent (a duplicate, zeroloss_wal_relay_resent_total) and not listed.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('sent-elsewhere');
});
after(async () => {
  await instance?.stop('fast');
});

/**
 * Per outbox row (seq order): its transitions from unsent to sent (what the collector counts as first sends
 * and repairs), its own and those of the batch transitions naming it. A resend is 1 -> 1, not one of them.
 */
async function sendsPerRow(s: WalSchema): Promise<Array<{ message_id: string; sends: number }>> {
  const { rows } = await s.pool.query<{ message_id: string; sends: number }>(
    `select o.message_id,
       ((select count(*) from "${s.schema}".outbox_transition t where t.message_id = o.message_id and t.to_state = 1 and t.from_state <> 1)
        + (select count(*) from "${s.schema}".outbox_transition t where t.message_id is null and t.to_state = 1 and t.from_state <> 1 and o.seq_id = any(t.seq_ids)))::int as sends
     from "${s.schema}".outbox o order by o.seq_id`,
  );
  return rows;
}

/** The row as the stream hands it to the ledger, as a whole commit's row or (`part`) a large transaction's. */
async function streamed(s: WalSchema, messageId: string, offset: number, part = false): Promise<WalSent> {
  const { rows } = await s.pool.query<{ seq_id: string; lsn: string }>(
    `select seq_id::text, pg_current_wal_lsn()::text as lsn from "${s.schema}".outbox where message_id = $1`,
    [messageId],
  );
  const row = rows[0];
  assert.ok(row);
  return { ref: row.seq_id, partition: 0, offset: BigInt(offset), insertOnly: true, commitEnd: part ? undefined : row.lsn };
}

for (const insertOnly of [true, false]) {
  describe(`${insertOnly ? 'insert-only' : 'row'} mode`, () => {
    test('rows marked sent by the repair before the stream brings them are counted once, the stream’s copy as resent', async () => {
      const s = await walSchema(instance.url, { createSlot: false });
      const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
      try {
        await s.wal.createSlot('test', { insertOnly });
        const ids = await enqueueOrders(s, 30, 5);
        // A relay published these and died before its record; reconcile found them on the broker (P5).
        const repaired = ids.filter((_, i) => i % 3 === 0);
        const marked = await ops.markSentFromBroker(
          repaired.map((messageId, i) => ({ messageId, partition: 0, offset: BigInt(i), timestampMs: Date.now() })),
          'reconcile',
        );
        assert.deepEqual(new Set(marked), new Set(repaired));

        const publisher = new ScriptedPublisher();
        const relay = createRelay({
          mode: 'wal',
          wal: s.wal,
          transport: { publisher },
          walBatchSize: 7,
          backoff: { baseMs: 20, maxMs: 50, jitter: 0 },
          maxAttempts: 5,
          pollIntervalMs: 20,
        });
        const counted = { sent: 0, resent: 0 };
        relay.on('batch', (b) => {
          counted.sent += b.sent;
          counted.resent += b.resent;
        });
        relay.on('error', () => {});
        await relay.start();
        try {
          await waitFor(() => counted.sent + counted.resent >= ids.length, { what: 'every streamed row recorded', timeoutMs: 20_000 });
        } finally {
          await relay.stop();
        }
        assert.equal(publisher.sent.length, ids.length, 'the stream sends every row (the repaired ones again: duplicates)');
        assert.deepEqual(counted, { sent: ids.length - repaired.length, resent: repaired.length });
        assert.deepEqual(
          (await sendsPerRow(s)).filter((r) => r.sends !== 1),
          [],
          'each row has one transition to sent: the repair’s, or its first send',
        );
        if (insertOnly) {
          const listed = new Map((await outboxRows(s)).map((r) => [r.message_id, r.listed]));
          assert.deepEqual(
            ids.map((id) => listed.get(id)),
            ids.map((id) => (repaired.includes(id) ? 0 : 1)),
            'a repaired row is sent on the row and listed by no batch',
          );
        }
      } finally {
        await s.cleanup();
      }
    });
  });
}

describe('insert-only mode, rows committed after the reading began', () => {
  // Such rows reached this reading only, so the record does not read them (nothing else had the time to mark
  // them), except once a record of the reading failed: its retry may come long after the send, and a repair
  // may have marked the rows meanwhile.
  test('a repair between a failed record and its retry: the retry counts the rows as resent, each row sent once', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    try {
      await s.wal.createSlot('test', { insertOnly: true });
      let failures = 0;
      // The first listing fails, after a repair (reconcile found the batch's messages on the broker) committed.
      const db = beforeEachStatement(s.store.db, async (sql) => {
        if (!/insert into \S+\.outbox_wal_batch/.test(sql) || failures > 0) return;
        failures++;
        // Every row of the outbox: the batch's (the enqueue may not have returned its ids yet).
        const { rows } = await s.pool.query<{ message_id: string }>(`select message_id from "${s.schema}".outbox`);
        await ops.markSentFromBroker(
          rows.map((r, i) => ({ messageId: r.message_id, partition: 0, offset: BigInt(i), timestampMs: Date.now() })),
          'reconcile',
        );
        throw new Error('the database went away');
      });
      const ids: string[] = [];
      const publisher = new ScriptedPublisher();
      const wal = postgresWal({ ...s.store, db }, { url: s.url });
      const relay = createRelay({
        mode: 'wal',
        wal,
        transport: { publisher },
        walBatchSize: 50,
        backoff: { baseMs: 20, maxMs: 50, jitter: 0 },
        maxAttempts: 5,
        pollIntervalMs: 20,
      });
      const counted = { sent: 0, resent: 0 };
      relay.on('batch', (b) => {
        counted.sent += b.sent;
        counted.resent += b.resent;
      });
      relay.on('error', () => {});
      const streaming = new Promise<void>((resolve) => relay.on('slot', (e) => e.state === 'streaming' && resolve()));
      await relay.start();
      try {
        await streaming;
        // Where the reading began is known: rows committed from now on are not looked at unless a record fails.
        await waitFor(() => (wal.stream as PgWalStream).readingFrom !== undefined, { what: "the reading's start" });
        const enqueued = await enqueueOrders(s, 10, 3);
        ids.push(...enqueued);
        await waitFor(() => counted.sent + counted.resent >= ids.length, { what: 'the batch recorded', timeoutMs: 20_000 });
      } finally {
        await relay.stop();
      }
      assert.equal(failures, 1);
      assert.deepEqual(counted, { sent: 0, resent: ids.length });
      assert.deepEqual(
        (await sendsPerRow(s)).map((r) => r.sends),
        ids.map(() => 1),
        'the repair’s transition only',
      );
      assert.deepEqual(
        (await outboxRows(s)).map((r) => r.listed),
        ids.map(() => 0),
      );
    } finally {
      await s.cleanup();
    }
  });
});

describe('insert-only mode, the batch listing', () => {
  test('a row resent after its listing and then streamed again (a replay the lookup by commit end misses) is not listed twice', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    try {
      await s.wal.createSlot('test', { insertOnly: true });
      const [id] = await enqueueOrders(s, 1, 1);
      assert.ok(id);
      // A part of a large transaction has no commit end yet, so its replay is not looked up.
      assert.deepEqual(await s.wal.ledger.record([await streamed(s, id, 0, true)], []), { sent: 1 });
      assert.deepEqual(await ops.recordResent([{ messageId: id, partition: 0, offset: 1n }], 'test', 'the broker lost it'), [id]);
      assert.deepEqual(await s.wal.ledger.record([await streamed(s, id, 2, true)], []), { sent: 0 }, 'counted as resent');
      assert.deepEqual(
        (await outboxRows(s)).map((r) => r.listed),
        [1],
      );
      assert.deepEqual(
        (await sendsPerRow(s)).map((r) => r.sends),
        [1],
        'its first send only',
      );
    } finally {
      await s.cleanup();
    }
  });

  test("a sparse batch (a shard's rows among the other shards') finds the rows another path marked too", async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    const ops = new PostgresOperationsStore(s.store.db, { schema: s.schema });
    try {
      await s.wal.createSlot('test', { insertOnly: true });
      const ids = await enqueueOrders(s, 80, 16);
      // Every 16th row: its seq_ids span 16 times the batch, past what one range read takes (4 times).
      const batch = ids.filter((_, i) => i % 16 === 0);
      const repaired = [batch[1], batch[3]] as string[];
      await ops.markSentFromBroker(
        repaired.map((messageId, i) => ({ messageId, partition: 0, offset: BigInt(i), timestampMs: Date.now() })),
        'reconcile',
      );
      const rows = await Promise.all(batch.map((id, i) => streamed(s, id, 10 + i)));
      assert.deepEqual(await s.wal.ledger.record(rows, []), { sent: batch.length - repaired.length });
      const listed = new Map((await outboxRows(s)).map((r) => [r.message_id, r.listed]));
      assert.deepEqual(
        batch.map((id) => listed.get(id)),
        batch.map((id) => (repaired.includes(id) ? 0 : 1)),
      );
      assert.deepEqual(
        (await sendsPerRow(s)).filter((r) => batch.includes(r.message_id)).map((r) => r.sends),
        batch.map(() => 1),
      );
    } finally {
      await s.cleanup();
    }
  });

  test('a row the polling path owns (failed on the row) is not listed when the stream replays it; the polling path sends it once', async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    try {
      await s.wal.createSlot('test', { insertOnly: true });
      const [id] = await enqueueOrders(s, 1, 1);
      assert.ok(id);
      const row = await streamed(s, id, 0);
      assert.deepEqual(await s.wal.ledger.record([], [{ ref: row.ref, error: 'refused', delayMs: 0, charge: true, heldBack: false }]), {
        sent: 0,
      });
      // Replayed (no acknowledgement reached the server) and sent this time: the row is the polling path's.
      assert.deepEqual(await s.wal.ledger.record([row], []), { sent: 0 });
      assert.deepEqual(
        (await outboxRows(s)).map((r) => [r.state, r.listed]),
        [[2, 0]],
      );
      const claimed = await s.wal.ledger.retrySource.claim('test', 10, 60_000);
      assert.deepEqual(
        claimed.map((c) => c.messageId),
        [id],
      );
      await s.wal.ledger.retrySource.markSent('test', [{ ref: row.ref, partition: 0, offset: 1n }]);
      assert.deepEqual(
        (await sendsPerRow(s)).map((r) => r.sends),
        [1],
      );
    } finally {
      await s.cleanup();
    }
  });
});
