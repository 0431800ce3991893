import assert from 'node:assert/strict';
import { ZerolossError } from '../../src/core/errors.ts';
import type { SqlExecutor } from '../../src/ports/sql-executor.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { Rollback, type Run, type StoreHarness } from './store-harness.ts';

/** A table of the test's own in the test's schema, for transaction tests that must not depend on zeroloss's tables. */
async function probeTable(h: StoreHarness): Promise<{ insert(tx: SqlExecutor, id: number): Promise<unknown>; ids(): Promise<number[]> }> {
  const table = `"${h.schema}".probe`;
  await h.store.db.query(`create table ${table} (id int primary key)`);
  return {
    insert: (tx, id) => tx.query(`insert into ${table} (id) values ($1)`, [id]),
    ids: async () => (await h.store.db.query<{ id: number }>(`select id from ${table} order by id`)).rows.map((r) => Number(r.id)),
  };
}

/** The Database port (`store.db`), `store.transaction` and `store.migrate`. */
export function databaseTests(run: Run): void {
  run('database: a transaction commits when its body resolves and returns its value', async (h) => {
    const probe = await probeTable(h);
    const value = await h.store.db.transaction(async (tx) => {
      await probe.insert(tx, 1);
      await probe.insert(tx, 2);
      return { answer: 42 };
    });
    assert.deepEqual(value, { answer: 42 });
    assert.deepEqual(await probe.ids(), [1, 2]);
  });

  run('database: a transaction whose body throws rolls back and rethrows that error', async (h) => {
    const probe = await probeTable(h);
    const thrown = new Rollback('on purpose');
    await assert.rejects(
      h.store.db.transaction(async (tx) => {
        await probe.insert(tx, 1);
        throw thrown;
      }),
      (error) => error === thrown,
    );
    assert.deepEqual(await probe.ids(), []);
    await h.store.db.transaction((tx) => probe.insert(tx, 3));
    assert.deepEqual(await probe.ids(), [3], 'the database is usable after a rollback');
  });

  run('database: a statement that failed inside a transaction fails the transaction even when the body caught its error', async (h) => {
    const probe = await probeTable(h);
    await assert.rejects(
      h.store.db.transaction(async (tx) => {
        await probe.insert(tx, 1);
        await probe.insert(tx, 1).catch(() => {});
        return 'reported as done';
      }),
    );
    assert.deepEqual(await probe.ids(), [], 'the insert before the failed statement was rolled back');
    await h.store.db.transaction((tx) => probe.insert(tx, 2));
    assert.deepEqual(await probe.ids(), [2], 'the database is usable afterwards');
  });

  run('database: that failure is a retryable ZerolossError ZL_TRANSACTION_ROLLED_BACK', async (h) => {
    const probe = await probeTable(h);
    await assert.rejects(
      h.store.db.transaction(async (tx) => {
        await probe.insert(tx, 1);
        await probe.insert(tx, 1).catch(() => {});
      }),
      (error) => {
        assert.ok(error instanceof ZerolossError, `expected a ZerolossError, got ${(error as Error)?.constructor?.name}: ${String(error)}`);
        assert.equal(error.code, 'ZL_TRANSACTION_ROLLED_BACK');
        assert.equal(error.retryable, true);
        return true;
      },
    );
  });

  run('database: listen delivers committed pg_notify payloads of its channel, in commit order, until unsubscribed', async (h) => {
    const { db } = h.store;
    const channel = `${h.schema}_probe`;
    // A listener may be told '' on (re)connect, meaning "look once": that is not a payload.
    const first: string[] = [];
    const other: string[] = [];
    const unlisten = await db.listen(channel, (p) => p !== '' && first.push(p));
    const unlistenOther = await db.listen(`${h.schema}_other`, (p) => p !== '' && other.push(p));
    try {
      await db.query('select pg_notify($1, $2)', [channel, 'one']);
      await db.transaction(async (tx) => {
        await tx.query('select pg_notify($1, $2)', [channel, 'two']);
      });
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('select pg_notify($1, $2)', [channel, 'rolled back']);
          throw new Rollback();
        }),
        Rollback,
      );
      await db.query('select pg_notify($1, $2)', [channel, 'three']);
      // Notifications arrive in commit order: once 'three' is here, a rolled-back one would have come before it.
      await waitFor(() => first.includes('three'), { timeoutMs: 10_000, what: 'notification three' });
      assert.deepEqual(first, ['one', 'two', 'three']);

      await unlisten();
      const witness: string[] = [];
      const unlistenWitness = await db.listen(channel, (p) => p !== '' && witness.push(p));
      await db.query('select pg_notify($1, $2)', [channel, 'four']);
      await waitFor(() => witness.includes('four'), { timeoutMs: 10_000, what: 'the witness listener to get four' });
      await unlistenWitness();
      assert.deepEqual(first, ['one', 'two', 'three'], 'an unsubscribed listener was still called');
      assert.deepEqual(other, [], 'a listener of another channel was called');
    } finally {
      await unlistenOther();
    }
  });

  run('store: transaction commits on resolve with its value and rolls back on throw, like the database', async (h) => {
    const probe = await probeTable(h);
    const value = await h.store.transaction(async (tx) => {
      await probe.insert(tx, 1);
      return 'value';
    });
    assert.equal(value, 'value');
    const thrown = new Rollback();
    await assert.rejects(
      h.store.transaction(async (tx) => {
        await probe.insert(tx, 2);
        throw thrown;
      }),
      (error) => error === thrown,
    );
    await assert.rejects(
      h.store.transaction(async (tx) => {
        await probe.insert(tx, 3);
        await probe.insert(tx, 1).catch(() => {});
      }),
    );
    assert.deepEqual(await probe.ids(), [1]);
  });

  run(
    'store: migrate creates the schema it was given, and a second run applies nothing and keeps the data',
    async (h) => {
      const exists = async () => (await h.store.db.query('select 1 from pg_namespace where nspname = $1', [h.schema])).rows.length === 1;
      assert.equal(await exists(), false);
      const first = await h.store.migrate();
      assert.equal(first.schema, h.schema);
      assert.ok(first.applied.length > 0, 'a fresh schema had nothing to apply');
      assert.deepEqual(
        first.applied,
        [...first.applied].sort((a, b) => a - b),
        'migrations ran out of order',
      );
      assert.equal(first.applied.at(-1), first.current);
      assert.equal(await exists(), true);

      await h.enqueue(h.row('k'));
      const second = await h.store.migrate();
      assert.deepEqual(second, { schema: h.schema, applied: [], current: first.current });
      assert.equal((await h.claim('relay-a')).length, 1, 'the outbox row did not survive the second migrate');
    },
    { migrated: false },
  );

  run(
    'store: two concurrent migrate runs apply each version once',
    async (h) => {
      const [a, b] = await Promise.all([h.store.migrate(), h.store.migrate()]);
      assert.equal(a.current, b.current);
      const all = [...a.applied, ...b.applied].sort((x, y) => x - y);
      assert.deepEqual(all, [...new Set(all)], 'a version was applied twice');
      assert.ok(a.applied.length === 0 || b.applied.length === 0, 'the two runs interleaved');
      assert.equal(all.at(-1), a.current);
    },
    { migrated: false },
  );
}
