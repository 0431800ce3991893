import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LockBusyError } from '../../../src/consumer/guards/guard-errors.ts';
import { onceUnderLock } from '../../../src/consumer/guards/once-under-lock.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { freshSchema, inTransaction } from '../../helpers/pg.ts';

/** Resolves for everyone once `parties` callers arrived: both copies pass their first check before either acts. */
function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return () => {
    if (++arrived >= parties) open();
    return opened;
  };
}

describe('bounded business lock with the second idempotency check (onceUnderLock)', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  // No unique index on the operation: nothing but the lock discipline stops a second deduction.
  const table = () => `"${env.schema}".deduction`;
  const isDone = (order: string) => async (tx: SqlExecutor) =>
    (await tx.query(`select 1 from ${table()} where order_id = $1`, [order])).rows.length > 0;
  const apply = (order: string) => async (tx: SqlExecutor) => {
    await tx.query(`insert into ${table()} (order_id, amount) values ($1, 10)`, [order]);
    return order;
  };
  const count = async (order: string) =>
    (await env.pool.query(`select count(*)::int as n from ${table()} where order_id = $1`, [order])).rows[0].n as number;

  /** The first check of each copy waits at the barrier, so both copies read "not done" before either applies. */
  const racingCheck = (order: string, arrive: () => Promise<void>) => {
    const first = new Set<SqlExecutor>();
    return async (tx: SqlExecutor) => {
      const done = await isDone(order)(tx);
      if (!first.has(tx)) {
        first.add(tx);
        await arrive();
      }
      return done;
    };
  };

  before(async () => {
    env = await freshSchema('zlgl');
    await env.pool.query(`create table ${table()} (order_id text not null, amount int not null)`);
  });
  after(() => env.cleanup());

  test('without the lock, two concurrent copies that both checked first apply twice (the race the helper closes)', async () => {
    const check = racingCheck('naive', barrier(2));
    await Promise.all(
      [1, 2].map(() =>
        inTransaction(env.pool, async (tx) => {
          if (!(await check(tx))) await apply('naive')(tx);
        }),
      ),
    );
    assert.equal(await count('naive'), 2);
  });

  test('two concurrent copies of one operation apply it once: the lock holder applies, the other re-checks after the lock and skips', async () => {
    const check = racingCheck('o1', barrier(2));
    const results = await Promise.all(
      [1, 2].map(() =>
        inTransaction(env.pool, (tx) => onceUnderLock(tx, { lockKey: 'deduct:o1', timeoutMs: 5_000, isDone: check, apply: apply('o1') })),
      ),
    );
    assert.equal(await count('o1'), 1);
    assert.deepEqual(results.map((r) => r.applied).sort(), [false, true]);
  });

  test('a lock not taken within its bound is a retryable ZL_LOCK_BUSY that leaves the transaction usable; the retry then finds the work done', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = inTransaction(env.pool, (tx) =>
      onceUnderLock(tx, {
        lockKey: 'deduct:o2',
        isDone: isDone('o2'),
        apply: async (t) => {
          await apply('o2')(t);
          locked();
          await held;
        },
      }),
    );
    await isLocked;
    const started = performance.now();
    const busy = await inTransaction(env.pool, async (tx) => {
      const error = await onceUnderLock(tx, { lockKey: 'deduct:o2', timeoutMs: 300, isDone: isDone('o2'), apply: apply('o2') }).catch(
        (e: unknown) => e,
      );
      await tx.query('select 1'); // still usable: a refused try does not abort the transaction
      return error;
    });
    const waited = performance.now() - started;
    assert.ok(busy instanceof LockBusyError, String(busy));
    assert.equal(busy.code, 'ZL_LOCK_BUSY');
    assert.equal(busy.retryable, true);
    assert.ok(waited >= 290 && waited < 3_000, `gave up after its bound (${Math.round(waited)} ms)`);
    release();
    assert.deepEqual(await holder, { applied: true, value: undefined });
    const again = await inTransaction(env.pool, (tx) =>
      onceUnderLock(tx, { lockKey: 'deduct:o2', isDone: isDone('o2'), apply: apply('o2') }),
    );
    assert.deepEqual(again, { applied: false });
    assert.equal(await count('o2'), 1);
  });
});
