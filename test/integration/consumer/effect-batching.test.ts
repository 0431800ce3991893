import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { PostgresInboxStore } from '../../../src/adapters/postgres/postgres-inbox-store.ts';
import { type BatchInbox, EffectBatcher } from '../../../src/consumer/effect-batcher.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import type { Claim, InboxEntry } from '../../../src/ports/inbox-store.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';

/**
 * Group commit of effect transactions (EffectBatcher) on the real Postgres: members that are ready together
 * share one transaction, and whatever goes wrong in it, every message's effect and inbox row still commit
 * together exactly once, and one member's failure is never another's.
 */
describe('effect batching: shared transactions keep each message exactly once', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let inbox: PostgresInboxStore;
  const GROUP = 'g1';

  before(async () => {
    env = await freshSchema('zleb');
    inbox = new PostgresInboxStore(env.db, { schema: env.schema });
    await env.pool.query(`create table "${env.schema}".effect (message_id text primary key, n int not null)`);
  });

  after(async () => {
    await env?.cleanup();
  });

  const entry = (id: string, n: number, key = id): InboxEntry => ({
    groupId: GROUP,
    idempotencyKey: key,
    messageId: id,
    topic: 't',
    partition: 0,
    offset: BigInt(n),
  });
  const effect = (id: string, n: number) => async (tx: SqlExecutor, claim: Claim) => {
    if (claim.kind === 'claimed') await tx.query(`insert into "${env.schema}".effect (message_id, n) values ($1, $2)`, [id, n]);
  };
  const applied = (claims: Claim[]) => claims.map((c) => c.kind === 'claimed');
  const counts = async (prefix: string) => {
    const e = await env.pool.query(`select count(*)::int as n from "${env.schema}".effect where message_id like $1`, [`${prefix}%`]);
    const i = await env.pool.query(`select count(*)::int as n from "${env.schema}".inbox where idempotency_key like $1`, [`${prefix}%`]);
    return { effects: e.rows[0].n as number, inbox: i.rows[0].n as number };
  };

  test('members ready together share transactions; each is applied once and reported applied', async () => {
    const sizes: number[] = [];
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 8, maxMs: 10_000, onTransaction: (n) => sizes.push(n) });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => batcher.run({ entry: entry(`a-${n}`, n), apply: effect(`a-${n}`, n) })),
    );
    assert.deepEqual(applied(results), Array(20).fill(true));
    // 20 ready at once with a limit of 8: three transactions of 7, 7 and 6, not 8, 8 and 4.
    assert.deepEqual(
      sizes.sort((x, y) => x - y),
      [6, 7, 7],
    );
    assert.deepEqual(await counts('a-'), { effects: 20, inbox: 20 });
    // Running the same messages again: all duplicates, nothing written.
    const again = await Promise.all(
      Array.from({ length: 20 }, (_, n) => batcher.run({ entry: entry(`a-${n}`, n), apply: effect(`a-${n}`, n) })),
    );
    assert.deepEqual(applied(again), Array(20).fill(false));
    assert.deepEqual(await counts('a-'), { effects: 20, inbox: 20 });
  });

  test('two copies of one idempotency key in the same batch: the first applies, the second is a duplicate', async () => {
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 16, maxMs: 10_000 });
    const results = await Promise.all([
      batcher.run({ entry: entry('b-1', 1), apply: effect('b-1', 1) }),
      batcher.run({ entry: entry('b-2', 2), apply: effect('b-2', 2) }),
      batcher.run({ entry: entry('b-1-copy', 3, 'b-1'), apply: effect('b-1-copy', 3) }),
    ]);
    assert.deepEqual(applied(results), [true, true, false]);
    assert.deepEqual(await counts('b-'), { effects: 2, inbox: 2 });
  });

  test("a member's own failure is its own: it gets the error, the others commit once", async () => {
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 16, maxMs: 10_000 });
    const runs = new Map<string, number>();
    const counted = (id: string, n: number) => async (tx: SqlExecutor, claim: Claim) => {
      runs.set(id, (runs.get(id) ?? 0) + 1);
      if (id === 'c-3') throw new ZerolossError('ZL_PERMANENT', 'business rule says no');
      await effect(id, n)(tx, claim);
    };
    const settled = await Promise.allSettled(
      Array.from({ length: 6 }, (_, n) => batcher.run({ entry: entry(`c-${n}`, n), apply: counted(`c-${n}`, n) })),
    );
    assert.deepEqual(
      settled.map((s) => s.status),
      ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    assert.match(String((settled[3] as PromiseRejectedResult).reason), /business rule says no/);
    assert.equal(runs.get('c-3'), 1, 'the failing handler is not run a second time for the same attempt');
    assert.deepEqual(await counts('c-'), { effects: 5, inbox: 5 }, 'no inbox row for the failed one');
  });

  test('a member that swallows a failed statement poisons only itself: typed error for it, the rest commit once', async () => {
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 16, maxMs: 10_000 });
    const swallowing = async (tx: SqlExecutor, claim: Claim) => {
      await effect('d-1', 1)(tx, claim);
      // A unique violation whose error the handler catches: the transaction is now aborted.
      await tx.query(`insert into "${env.schema}".effect (message_id, n) values ('d-1', 1)`).catch(() => {});
    };
    const settled = await Promise.allSettled([
      batcher.run({ entry: entry('d-0', 0), apply: effect('d-0', 0) }),
      batcher.run({ entry: entry('d-1', 1), apply: swallowing }),
      batcher.run({ entry: entry('d-2', 2), apply: effect('d-2', 2) }),
      batcher.run({ entry: entry('d-3', 3), apply: effect('d-3', 3) }),
    ]);
    assert.deepEqual(
      settled.map((s) => s.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const reason = (settled[1] as PromiseRejectedResult).reason as ZerolossError;
    assert.equal(reason.code, 'ZL_TRANSACTION_ROLLED_BACK');
    assert.equal(reason.retryable, true);
    assert.deepEqual(await counts('d-'), { effects: 3, inbox: 3 });
    const own = await env.pool.query(`select 1 from "${env.schema}".inbox where idempotency_key = 'd-1'`);
    assert.equal(own.rows.length, 0, 'the rolled-back message is not recorded as applied');
  });

  test('past the time budget, the members not started run alone, and their inbox rows are not left behind', async () => {
    const sizes: number[] = [];
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 16, maxMs: 5, onTransaction: (n) => sizes.push(n) });
    // The first handler holds the shared transaction past the budget (it waits on the database itself).
    const slow = async (tx: SqlExecutor, claim: Claim) => {
      await tx.query('select pg_sleep(0.05)');
      await effect('e-0', 0)(tx, claim);
    };
    const results = await Promise.all([
      batcher.run({ entry: entry('e-0', 0), apply: slow }),
      ...Array.from({ length: 5 }, (_, i) => batcher.run({ entry: entry(`e-${i + 1}`, i + 1), apply: effect(`e-${i + 1}`, i + 1) })),
    ]);
    assert.deepEqual(applied(results), Array(6).fill(true));
    assert.equal(sizes[0], 1, 'the shared transaction committed only the member it started');
    assert.deepEqual(await counts('e-'), { effects: 6, inbox: 6 });
  });

  test('the shared inbox statement failing (connection trouble) reruns every member alone: all applied once', async () => {
    let failures = 0;
    const flaky: BatchInbox = {
      claimMany: (tx, entries) => {
        if (entries.length > 1 && failures++ === 0)
          return Promise.reject(Object.assign(new Error('connection terminated'), { code: '57P01' }));
        return inbox.claimMany(tx, entries);
      },
      unclaimMany: (tx, entries) => inbox.unclaimMany(tx, entries),
    };
    const sizes: number[] = [];
    const batcher = new EffectBatcher(env.db, flaky, { maxMessages: 16, maxMs: 10_000, onTransaction: (n) => sizes.push(n) });
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, n) => batcher.run({ entry: entry(`h-${n}`, n), apply: effect(`h-${n}`, n) })),
    );
    assert.deepEqual(applied(results), Array(5).fill(true));
    assert.equal(failures, 1, 'the shared statement failed once');
    assert.deepEqual(sizes, [5, 1, 1, 1, 1, 1], 'the failed shared transaction, then each member alone');
    assert.deepEqual(await counts('h-'), { effects: 5, inbox: 5 });
  });

  test('waiting for a pooled connection does not count against the time budget', async () => {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 1 });
    const db = pgDatabase({ pool });
    try {
      const sizes: number[] = [];
      const batcher = new EffectBatcher(db, new PostgresInboxStore(db, { schema: env.schema }), {
        maxMessages: 16,
        // The budget is far above what three small effects take even on a loaded machine (20 ms was not:
        // a clean-clone run under load 20 split the batch), and the wait below is longer still.
        maxMs: 1_000,
        onTransaction: (n) => sizes.push(n),
      });
      // The only connection is busy for longer than the budget when the batch asks for it.
      const busy = await pool.connect();
      setTimeout(() => busy.release(), 1_500);
      await Promise.all(Array.from({ length: 3 }, (_, n) => batcher.run({ entry: entry(`i-${n}`, n), apply: effect(`i-${n}`, n) })));
      assert.deepEqual(sizes, [3], 'one shared transaction, not split by the wait');
      assert.deepEqual(await counts('i-'), { effects: 3, inbox: 3 });
    } finally {
      await pool.end();
    }
  });

  test('maxMessages 1 turns batching off: every member is a transaction of its own', async () => {
    const sizes: number[] = [];
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 1, maxMs: 10_000, onTransaction: (n) => sizes.push(n) });
    await Promise.all(Array.from({ length: 5 }, (_, n) => batcher.run({ entry: entry(`f-${n}`, n), apply: effect(`f-${n}`, n) })));
    assert.deepEqual(sizes, [1, 1, 1, 1, 1]);
    assert.deepEqual(await counts('f-'), { effects: 5, inbox: 5 });
  });

  test('the commit itself failing (a deferred constraint) runs every member again alone; only the culprit fails', async () => {
    await env.pool.query(
      `create table "${env.schema}".deferred (id int, constraint deferred_once unique (id) deferrable initially deferred)`,
    );
    await env.pool.query(`insert into "${env.schema}".deferred (id) values (99)`);
    const batcher = new EffectBatcher(env.db, inbox, { maxMessages: 16, maxMs: 10_000 });
    const runs = new Map<string, number>();
    const write = (id: string, n: number, row: number) => async (tx: SqlExecutor, claim: Claim) => {
      runs.set(id, (runs.get(id) ?? 0) + 1);
      await effect(id, n)(tx, claim);
      await tx.query(`insert into "${env.schema}".deferred (id) values ($1)`, [row]);
    };
    // g-1 collides with row 99 only when the constraint is checked, at commit: the shared commit fails.
    const settled = await Promise.allSettled([
      batcher.run({ entry: entry('g-0', 0), apply: write('g-0', 0, 1) }),
      batcher.run({ entry: entry('g-1', 1), apply: write('g-1', 1, 99) }),
      batcher.run({ entry: entry('g-2', 2), apply: write('g-2', 2, 2) }),
    ]);
    assert.deepEqual(
      settled.map((s) => s.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(runs.get('g-0'), 2, 'ran in the batch, then again alone after the rolled-back commit');
    assert.deepEqual(await counts('g-'), { effects: 2, inbox: 2 });
  });
});
