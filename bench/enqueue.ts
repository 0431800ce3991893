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

export async function enqueueBench(env: BenchEnv, messages: number, reps: Reps): Promise<BenchResult> {
  const s = await benchSchema(env, 'zlb_enqueue');
  const outbox = testOutbox({ schema: s.schema, producerId: 'bench' });
  const transaction = clientTransaction(s.pool);
  let offset = 0;
  const run = (withOutbox: boolean) => async (): Promise<RunResult> => {
    const start = offset;
    offset += messages;
    return timed(() =>
      orderTransactions({
        transaction,
        schema: s.schema,
        transactions: messages,
        workers: ENQUEUE_WORKERS,
        offset: start,
        ...(withOutbox ? { outbox: { outbox, topic: 'orders' } } : {}),
      }),
    );
  };
  try {
    const { a, b } = await interleaved(reps, run(true), run(false), env.log);
    return makeResult({
      name: 'enqueue',
      messages,
      zeroloss: a,
      baseline: b,
      baselineName: 'the same business transaction (insert order, update balance) without the enqueue',
      latencyOf: 'business transaction, begin to commit (8 concurrent)',
      reps: reps.reps,
      target: { metric: 'overhead', op: '<=', value: 1.25 },
      notes: 'throughput = transactions/s; time overhead = 1 / ratio',
    });
  } finally {
    await s.drop();
  }
}
