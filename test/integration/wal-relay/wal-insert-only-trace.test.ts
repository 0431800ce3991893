import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { PostgresOperationsStore } from '../../../src/adapters/postgres/postgres-operations-store.ts';
import { trace } from '../../../src/operations/trace.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import { ScriptedPublisher } from '../../helpers/scripted-publisher.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { enqueueOrders } from './insert-only-rows.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * `zeroloss trace` of a row the WAL relay sent in the insert-only mode (docs/wal-relay.md): the relay records
 * the send by a batch row and one transition row for the whole batch (no message_id, the batch's seq_ids),
 * and never touches the outbox row, so the row has no `sent_batch` to find that transition by. Trace must
 * still show the row's 0 -> 1 by the relay, once; a row still in the stream shows none.
 */
let instance: PostgresInstance;

before(async () => {
  instance = await startWalPostgres('insert-only-trace');
});
after(async () => {
  await instance?.stop('fast');
});

describe('trace in the insert-only mode', () => {
  test("a row a batch lists shows the batch's transition; a row still in the stream shows none", async () => {
    const s = await walSchema(instance.url, { createSlot: false });
    await s.wal.createSlot('test', { insertOnly: true });
    const publisher = new ScriptedPublisher();
    const relay = createRelay({
      mode: 'wal',
      wal: s.wal,
      transport: { publisher },
      walBatchSize: 50,
      backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
      maxAttempts: 5,
      pollIntervalMs: 50,
    });
    let sent = 0;
    relay.on('batch', (b) => {
      sent += b.sent;
    });
    const ops = new PostgresOperationsStore(pgDatabase({ pool: s.pool }), { schema: s.schema });
    try {
      await relay.start();
      const ids = await enqueueOrders(s, 120, 4);
      await waitFor(() => sent >= 120, { what: 'every row recorded' });
      await relay.stop();
      const { rows } = await s.pool.query<{ batches: number; transitions: number }>(
        `select (select count(*)::int from "${s.schema}".outbox_wal_batch) as batches,
                (select count(*)::int from "${s.schema}".outbox_transition) as transitions`,
      );
      assert.ok((rows[0]?.batches ?? 0) > 1, 'several batches');
      assert.equal(rows[0]?.transitions, rows[0]?.batches, 'one transition row per batch');

      for (const id of [ids[0], ids[57], ids[119]]) {
        assert.ok(id);
        const t = await trace({ store: ops }, id);
        assert.equal(t.outbox?.stateName, 'sent');
        assert.deepEqual(
          t.transitions.map((x) => [x.from, x.to, x.attempt, x.actor]),
          [[0, 1, 1, `wal:${s.wal.slot}`]],
          `the transitions of ${id}`,
        );
        assert.ok(t.steps.some((step) => step.stage === 'relay' && step.text.startsWith('pending → sent')));
      }

      // Enqueued with no relay reading: in the stream, no transition.
      const [waiting] = await enqueueOrders(s, 1, 1, 1_000);
      assert.ok(waiting);
      const w = await trace({ store: ops }, waiting);
      assert.equal(w.outbox?.inStream, true);
      assert.deepEqual(w.transitions, []);
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });
});
