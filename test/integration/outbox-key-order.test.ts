import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';

import { freshSchema, inTransaction, uniqueName } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

describe('commit order per key across producers writing one outbox', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlt_order');
  });
  after(async () => {
    await env.cleanup();
  });

  /** Whether the backend `pid` is blocked on a heavyweight lock (a row lock waits on the holder's transaction id). */
  async function waitingOnLock(pid: number): Promise<boolean> {
    const { rows } = await env.pool.query('select wait_event_type from pg_stat_activity where pid = $1', [pid]);
    return rows[0]?.wait_event_type === 'Lock';
  }

  /** The outbox sequence's last drawn value (sequences are not transactional: draws show at once). */
  async function lastSeqId(): Promise<string> {
    const { rows } = await env.pool.query(`select last_value::text as v from "${env.schema}".outbox_seq_id_seq`);
    return rows[0].v;
  }

  for (const sequencing of [true, false]) {
    test(`the transaction that inserts first and commits last is relayed last (sequencing: ${sequencing})`, async () => {
      const key = uniqueName('key');
      const message = (payload: string) => ({ topic: 'orders', key, type: 'x', payload });
      const first = testOutbox({ schema: env.schema, producerId: 'producer-a', sequencing });
      const second = testOutbox({ schema: env.schema, producerId: 'producer-b', sequencing });
      const clientA: pg.PoolClient = await env.pool.connect();
      const clientB: pg.PoolClient = await env.pool.connect();
      let commitOrder: string[];
      try {
        await clientA.query('begin');
        await clientB.query('begin');
        const a = await first.enqueue(clientA, message('a'));
        const drawnAfterA = await lastSeqId();
        const pidB = (await clientB.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
        let enqueuedB = false;
        const enqueueB = second.enqueue(clientB, message('b')).then((envelope) => {
          enqueuedB = true;
          return envelope;
        });
        // B either enqueues at once (nothing orders it after A) or waits for A's key; A commits only then.
        const state = await waitFor(async () => (enqueuedB ? 'enqueued' : (await waitingOnLock(pidB)) ? 'waiting' : undefined), {
          what: 'B enqueued or waiting for the key',
        });
        if (state === 'enqueued') {
          const b = await enqueueB;
          await clientB.query('commit');
          await clientA.query('commit');
          commitOrder = [b.id, a.id];
        } else {
          // Had B drawn its seq_id before waiting, a third enqueue of the key could take the lock first
          // and commit a higher seq_id before B's lower one: the relay would then send it ahead of B.
          assert.equal(await lastSeqId(), drawnAfterA, 'B waits for the key before it draws its seq_id');
          await clientA.query('commit');
          const b = await enqueueB;
          await clientB.query('commit');
          commitOrder = [a.id, b.id];
        }
      } finally {
        clientA.release();
        clientB.release();
      }
      const store = new PostgresOutboxStore(env.db, { schema: env.schema });
      const claimed = (await store.claim(uniqueName('relay'), 1000, 60_000)).filter((row) => row.record.key === key);
      assert.deepEqual(
        claimed.map((row) => row.messageId),
        commitOrder,
        'the relay sends the key in commit order',
      );
    });
  }

  test('one transaction enqueues 10,000 distinct keys (key locks are row locks, not entries in the shared lock table)', async () => {
    const outbox = testOutbox({ schema: env.schema, producerId: 'bulk' });
    const prefix = uniqueName('bulk');
    await inTransaction(env.pool, async (tx) => {
      for (let i = 0; i < 10_000; i++) await outbox.enqueue(tx, { topic: 'orders', key: `${prefix}-${i}`, type: 'x', payload: i });
    });
    const { rows } = await env.pool.query(`select count(*)::int as n from "${env.schema}".outbox where msg_key like $1`, [`${prefix}-%`]);
    assert.equal(rows[0].n, 10_000);
  });
});
