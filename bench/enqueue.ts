import type pg from 'pg';
import type { Outbox } from '../src/outbox/outbox.ts';
import type { SqlExecutor } from '../src/ports/sql-executor.ts';
import { type BenchEnv, benchSchema, CUSTOMERS, orderPayload, placeOrder, pool } from './lib/env.ts';
import { interleaved, type Reps, type RunResult, timed } from './lib/measure.ts';
import { type BenchResult, makeResult } from './lib/result.ts';
import { testOutbox } from '../test/helpers/test-outbox.ts';

export const ENQUEUE_WORKERS = 8;

/**
 * `transactions` business transactions, `workers` at once, each: begin; insert an order; charge the
 * customer's balance; [enqueue one message keyed by the customer]; commit. Latency is per transaction.
 */
export async function orderTransactions(options: {
  transaction: <T>(fn: (tx: SqlExecutor) => Promise<T>) => Promise<T>;
  schema: string;
  transactions: number;
  workers: number;
  outbox?: { outbox: Outbox; topic: string };
  offset?: number;
}): Promise<{ messages: number; latenciesMs: number[] }> {
  const latenciesMs = await pool(options.transactions, options.workers, async (j) => {
    const i = (options.offset ?? 0) + j;
    const customer = (i * 7919) % CUSTOMERS;
    const t0 = performance.now();
    await options.transaction(async (tx) => {
      await placeOrder(tx, options.schema, customer, 1 + (i % 100));
      if (options.outbox) {
        const key = `c-${customer}`;
        await options.outbox.outbox.enqueue(tx, { topic: options.outbox.topic, key, type: 'order.placed', payload: orderPayload(i, key) });
      }
    });
    return performance.now() - t0;
  });
  return { messages: options.transactions, latenciesMs };
}

/** A transaction on a pool client, begin/commit by hand, as an application does it. */
export function clientTransaction(p: pg.Pool) {
  return async <T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> => {
    const client = await p.connect();
    try {
      await client.query('begin');
      const value = await fn(client as unknown as SqlExecutor);
      await client.query('commit');
      return value;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
}

export async function enqueueBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult[]> {
  const s = await benchSchema(env, 'zlb_enqueue');
  // The outbox a WAL relay in the insert-only mode reads (docs/wal-relay.md): the same table with its state
  // default switched, as `relay --mode wal --create-slot --insert-only` does; its rows enter no partial index.
  const io = await benchSchema(env, 'zlb_enqueue_io');
  await io.pool.query(`alter table "${io.schema}".outbox alter column state set default 1`);
  let offset = 0;
  const run = (schema: typeof s, withOutbox: boolean) => {
    const outbox = testOutbox({ schema: schema.schema, producerId: 'bench' });
    const transaction = clientTransaction(schema.pool);
    return async (): Promise<RunResult> => {
      const start = offset;
      offset += messages;
      return timed(() =>
        orderTransactions({
          transaction,
          schema: schema.schema,
          transactions: messages,
          workers: ENQUEUE_WORKERS,
          offset: start,
          ...(withOutbox ? { outbox: { outbox, topic: 'orders' } } : {}),
        }),
      );
    };
  };
  const common = {
    messages,
    baselineName: 'the same business transaction (insert order, update balance) without the enqueue',
    latencyOf: 'business transaction, begin to commit (8 concurrent)',
    reps: reps.reps,
    notes: 'throughput = transactions/s; time overhead = 1 / ratio',
  };
  try {
    const { a, b } = await interleaved(reps, run(s, true), run(s, false), env.log);
    const insertOnly = await interleaved(reps, run(io, true), run(io, false), env.log);
    return [
      makeResult({ name: 'enqueue', zeroloss: a, baseline: b, ...common, target: { metric: 'overhead', op: '<=', value: 1.25 } }),
      makeResult({
        name: 'enqueue-insert-only',
        zeroloss: insertOnly.a,
        baseline: insertOnly.b,
        ...common,
        target: { metric: 'overhead', op: '<=', value: 1.2 },
        notes: `${common.notes}; the insert-only outbox (state default 1) that the WAL relay's insert-only mode reads (issue #14, acceptance 2)`,
      }),
    ];
  } finally {
    await s.drop();
    await io.drop();
  }
}
