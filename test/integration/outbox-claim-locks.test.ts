import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { outboxSql } from '../../src/adapters/postgres/outbox-sql.ts';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { freshSchema, inTransaction, uniqueName } from '../helpers/pg.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

/**
 * What a claim locks, seen from a second claim running beside it (real Postgres: two sessions). A claim
 * statement is held open by running it inside a transaction that has not ended yet, which is what a
 * concurrent claim sees while the other is still running.
 */
describe('outbox claim: what it locks', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let sql: ReturnType<typeof outboxSql>;
  before(async () => {
    env = await freshSchema('zlt_claim_locks');
    sql = outboxSql(`"${env.schema}"`, { notifyChannel: undefined, holdKeyOnParked: true });
  });
  after(async () => {
    await env.cleanup();
  });

  async function enqueue(key: string, count: number): Promise<string[]> {
    const outbox = testOutbox({ schema: env.schema });
    return inTransaction(env.pool, async (tx) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push((await outbox.enqueue(tx, { topic: 'orders', key, type: 'x', payload: String(i) })).id);
      return ids;
    });
  }

  /**
   * Ends a session's open transaction and gives the session back, also when a test failed midway: a
   * transaction left open would hold its row locks, and the schema's drop in `after` would wait on them.
   */
  async function endSession(client: pg.PoolClient): Promise<void> {
    await client.query('rollback').catch(() => {});
    client.release();
  }

  /** Runs the claim statement in an open transaction on its own session; `end` rolls it back. */
  async function openClaim(limit: number): Promise<{ rows: unknown[]; end: () => Promise<void> }> {
    const client: pg.PoolClient = await env.pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query(sql.claim, [uniqueName('other'), limit, 60_000]);
      return { rows, end: () => endSession(client) };
    } catch (error) {
      await endSession(client);
      throw error;
    }
  }

  test("a claim that comes back empty (its keys held by another instance's lease) leaves the next rows to that instance", async () => {
    const key = uniqueName('key');
    const ids = await enqueue(key, 10);
    const store = new PostgresOutboxStore(env.db, { schema: env.schema });
    const working = uniqueName('working');
    const first = await store.claim(working, 5, 60_000);
    assert.deepEqual(
      first.map((r) => r.messageId),
      ids.slice(0, 5),
    );
    // Another instance claims while the key's first rows are leased: nothing of the key is for it.
    const idle = await openClaim(500);
    try {
      assert.equal(idle.rows.length, 0);
      // The working instance records its round and claims the key's next rows while that claim still runs.
      await store.markSent(
        working,
        first.map((r, i) => ({ ref: r.ref, partition: 0, offset: BigInt(i) })),
      );
      const next = await store.claim(working, 500, 60_000);
      assert.deepEqual(
        next.map((r) => r.messageId),
        ids.slice(5),
        "the empty claim held no lock on the key's next rows",
      );
    } finally {
      await idle.end();
    }
  });

  test("a row another claim is locking right now holds back its key's later rows, not only itself", async () => {
    const key = uniqueName('key');
    const ids = await enqueue(key, 4);
    const holder = await env.pool.connect();
    try {
      await holder.query('begin');
      // As a concurrent claim does in the moment between locking the row and leasing it.
      await holder.query(`select 1 from "${env.schema}".outbox where message_id = $1 for update`, [ids[0]]);
      const store = new PostgresOutboxStore(env.db, { schema: env.schema });
      const claimed = (await store.claim(uniqueName('relay'), 500, 60_000)).filter((r) => r.record.key === key);
      assert.deepEqual(claimed, [], 'nothing of the key is taken while its first row is being claimed elsewhere');
      await holder.query('rollback');
      const after = (await store.claim(uniqueName('relay'), 500, 60_000)).filter((r) => r.record.key === key);
      assert.deepEqual(
        after.map((r) => r.messageId),
        ids,
      );
    } finally {
      await endSession(holder);
    }
  });
});
