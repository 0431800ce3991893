import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Consumer } from '../../src/consumer/consumer.ts';
import { RetryableError } from '../../src/core/errors.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import type { Publisher, Subscriber } from '../../src/ports/transport.ts';
import { createEffectTable, insertEffect, uniqueId, zlRecord } from './consumer-fixtures.ts';
import { freshSchema } from './pg.ts';
import { waitFor } from './wait-for.ts';
import { testConsumer } from './test-consumer.ts';

/** One transport under the shared consumer test: its topics already exist (4 partitions each). */
export interface ConsumerTransport {
  /** The source topic; `<topic>.dlq` and `<topic>.retry.1` exist too. */
  topic: string;
  publisher: Publisher;
  /** A fresh subscriber with short heartbeats, one per consumer. */
  subscriber(): Subscriber;
  /** How many records reached `<topic>.retry.1` (may wait until at least one is visible). */
  retried(): Promise<number>;
  /** Deletes what the transport made outside the test's database schema. */
  cleanup(): Promise<void>;
}

/**
 * The consumer runtime depends on the Subscriber/Publisher ports only: the same test over every
 * transport, with duplicates, a bad record, a retry-topic round trip and a second member joining the
 * group mid-run. `open` creates the transport's topics in the test's schema or namespace.
 */
export function consumerOverTransport(
  name: string,
  open: (env: { db: Database; schema: string; groupId: string }) => Promise<ConsumerTransport>,
): void {
  describe(`consumer over ${name}`, () => {
    let env: Awaited<ReturnType<typeof freshSchema>>;
    const consumers: Consumer[] = [];
    const cleanups: Array<() => Promise<void>> = [];
    before(async () => {
      env = await freshSchema('zlc');
      await createEffectTable(env.db, env.schema);
    });
    after(async () => {
      for (const c of consumers) await c.stop();
      for (const cleanup of cleanups) await cleanup();
      await env.cleanup();
    });

    test('each effect once, in key order; bad input dead-lettered; retry topic used', async () => {
      const groupId = uniqueId('g');
      const transport = await open({ db: env.db, schema: env.schema, groupId });
      cleanups.push(() => transport.cleanup());
      const { topic, publisher } = transport;
      const make = () => {
        const consumer = testConsumer({
          subscriber: transport.subscriber(),
          db: env.db,
          publisher,
          schema: env.schema,
          config: { groupId, topics: [topic], commitIntervalMs: 50 },
        });
        consumer.handle<{ n: number }>('credit', async (m, ctx) =>
          insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
        );
        consumer.handle<{ n: number }>(
          'flaky',
          async (m, ctx) => {
            // Every first attempt fails, not only the process's first: a rebalance may take the partition
            // between the failure and the retry copy, and the new owner's first attempt (unless it resumed
            // at the second) must fail too.
            if (ctx.attempt === 1) throw new RetryableError('first try fails');
            await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
          },
          { retry: { mode: 'topic', maxRetries: 1, delayMs: 50 } },
        );
        consumers.push(consumer);
        return consumer;
      };
      await make().start();

      const records = [];
      for (let n = 1; n <= 40; n++)
        for (let k = 0; k < 10; k++) records.push(zlRecord({ topic, key: `k${k}`, type: 'credit', payload: { n } }));
      const firstHalf = records.slice(0, 200);
      const secondHalf = records.slice(200);
      for (const o of await publisher.publish([...firstHalf, firstHalf[7] as (typeof records)[number]])) assert.ok(o.ok);
      await waitFor(async () => ((await consumers[0]?.metrics())?.zeroloss_consumer_processed_total ?? 0) >= 50, { what: 'first effects' });
      await make().start();
      const bad = { ...zlRecord({ topic, key: 'k0', type: 'credit', payload: {} }), value: Buffer.from('{oops') };
      const flakyRecord = zlRecord({ topic, key: 'f', type: 'flaky', payload: { n: 1 } });
      for (const o of await publisher.publish([...secondHalf, bad, flakyRecord, secondHalf[3] as (typeof records)[number]]))
        assert.ok(o.ok);

      await waitFor(async () => (await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`)).rows[0].n === 401, {
        what: '400 credits and the flaky message applied',
        timeoutMs: 60_000,
      });
      const { rows } = await env.pool.query(
        `select msg_key, array_agg(n order by id) as ns, count(distinct message_id)::int as d, count(*)::int as c
         from "${env.schema}".effect where type = 'credit' group by msg_key`,
      );
      assert.equal(rows.length, 10);
      for (const r of rows) {
        assert.deepEqual(
          r.ns,
          Array.from({ length: 40 }, (_, i) => i + 1),
          `key ${r.msg_key} in order`,
        );
        assert.equal(r.c, r.d, `key ${r.msg_key}: no effect twice`);
      }
      const dead = await env.pool.query(`select error_code, error from "${env.schema}".dead_letter`);
      assert.equal(dead.rows.length, 1);
      assert.match(dead.rows[0].error, /not valid JSON/);
      const flaky = await env.pool.query(`select count(*)::int as n from "${env.schema}".effect where type = 'flaky'`);
      assert.equal(flaky.rows[0].n, 1, 'the flaky message applied once');
      // Once as a rule; again for a copy of the original redelivered by a rebalance before its offset was
      // committed; or not at all when a rebalance handed the original over after its failed first attempt:
      // the new owner resumes at attempt 2 (attempt resume, migration 017) and applies it in place.
      const retried = await transport.retried();
      assert.ok(retried <= 2, `the flaky message went through ${topic}.retry.1 at most twice (${retried} copies)`);
    });
  });
}
