import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Consumer } from '../../../src/consumer/consumer.ts';
import type { IncomingRecord } from '../../../src/core/envelope.ts';
import type { SubscribeOptions, Subscriber } from '../../../src/ports/transport.ts';
import { createEffectTable, insertEffect, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { freshSchema } from '../../helpers/pg.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * A subscription bounds its wait for onRevoke (the table log's rebalanceTimeoutMs), and may assign the same
 * partition to this consumer again, and redeliver from the committed offset, while the consumer's revoke is
 * still committing (a slow database). The redelivered records past the last one the old assignment had
 * seen went to the old, aborted run and were skipped; the revoke then forgot the partition, the next
 * batch started afresh after them, and the next commit moved past records nobody applied.
 */
let env: Awaited<ReturnType<typeof freshSchema>>;
before(async () => {
  env = await freshSchema('zlrr');
  await createEffectTable(env.db, env.schema);
});
after(async () => {
  await env.cleanup();
});

test('a partition assigned again while its revoke is still committing: every record applied once', async () => {
  let options: SubscribeOptions | undefined;
  let commitGate: Promise<void> | undefined;
  let commitCalls = 0;
  const committed: bigint[] = [];
  const subscriber: Subscriber = {
    async subscribe(given) {
      options = given;
      return {
        commit: async (offsets) => {
          commitCalls++;
          await commitGate;
          for (const o of offsets) committed.push(o.offset);
        },
        pause() {},
        resume() {},
        close: async () => {},
      };
    },
  };
  const consumer: Consumer = testConsumer({
    subscriber,
    db: env.db,
    schema: env.schema,
    config: { groupId: 'g', topics: ['t'], commitIntervalMs: 60_000, lagIntervalMs: 0, revokeTimeoutMs: 100 },
  });
  consumer.handle<{ n: number }>('credit', async (m, ctx) =>
    insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type }),
  );
  const records: IncomingRecord[] = Array.from({ length: 15 }, (_, n) => ({
    ...zlRecord({ topic: 't', key: `k${n % 3}`, type: 'credit', payload: { n } }),
    partition: 0,
    offset: BigInt(n),
  }));
  const deliver = (from: number, to: number) => options?.onRecords({ topic: 't', partition: 0, records: records.slice(from, to) });
  const applied = async () => (await env.pool.query(`select count(distinct message_id)::int as n from "${env.schema}".effect`)).rows[0].n;
  await consumer.start();
  try {
    options?.onAssign?.([{ topic: 't', partition: 0 }]);
    deliver(0, 5);
    await waitFor(async () => (await applied()) === 5, { what: 'the first five applied' });
    // The revoke's commit hangs (a slow database)...
    let release = () => {};
    commitGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const revoking = options?.onRevoke?.([{ topic: 't', partition: 0 }]);
    await waitFor(() => commitCalls > 0, { what: "the revoke's commit under way" });
    // ...while the subscription gives the partition back to this consumer and redelivers from offset 0.
    options?.onAssign?.([{ topic: 't', partition: 0 }]);
    deliver(0, 10);
    release();
    await revoking;
    deliver(10, 15);
    await waitFor(async () => (await applied()) === 15, { what: 'all fifteen applied', timeoutMs: 10_000 });
    const { rows } = await env.pool.query(`select count(*)::int as n from "${env.schema}".effect`);
    assert.equal(rows[0].n, 15, 'each applied once');
  } finally {
    await consumer.stop();
  }
});
