import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { tableLog } from '../../../src/adapters/table-log/table-log-transport.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { divert } from '../../../src/operations/backlog.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { PublishOutcome, Publisher } from '../../../src/ports/transport.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * The incident tool on the WAL relay: a topic is down, its failed rows wait for the polling path with
 * their key held back, and an operator diverts the topic (`backlog divert --move-unsent`). The waiting row
 * now names the target topic, and so does every new row of its key (the rule applies at enqueue): the key
 * must stay held under its new topic, or its new rows stream to the target ahead of the waiting one.
 */
let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('divert');
});
after(async () => {
  await instance?.stop('fast');
});

test('a key held back behind a failed row stays held when divert moves the row to another topic', async () => {
  const s = await walSchema(instance.url);
  const transport = tableLog(s.store);
  await transport.ensureTopic('orders2', 1);
  // 'orders' is down: every send to it fails as a missing topic does.
  const publisher: Publisher = {
    close: () => transport.publisher.close(),
    async publish(records) {
      const down = new ZerolossError('ZL_TOPIC_UNAVAILABLE', 'orders is down (test)', { retryable: true });
      const up = records.filter((r) => r.topic !== 'orders');
      const sent = await transport.publisher.publish(up);
      let j = 0;
      return records.map(
        (r): PublishOutcome => (r.topic === 'orders' ? { ok: false, error: down, attempted: true } : (sent[j++] as PublishOutcome)),
      );
    },
  };
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher },
    pollIntervalMs: 100,
    backoff: { baseMs: 3_000, maxMs: 3_000, jitter: 0 },
    heldKeysRefreshMs: 60_000,
  });
  const outbox = testOutbox({ schema: s.schema });
  const enqueue = (n: number) =>
    s.store.transaction((tx) => outbox.enqueue(tx, { topic: 'orders', key: 'k', type: 'order.paid', payload: { n } }));
  try {
    await relay.start();
    const first = await enqueue(1);
    await waitFor(
      async () => (await s.pool.query(`select state from "${s.schema}".outbox where message_id = $1`, [first.id])).rows[0]?.state === 2,
      { what: 'the first row failed and waiting for the polling path', timeoutMs: 10_000 },
    );
    const moved = await divert(
      { store: s.store.operations },
      { topic: 'orders', types: ['*'], target: 'orders2', moveUnsent: true },
      { actor: 'ops', reason: 'orders is down' },
    );
    assert.equal(moved.moved, 1);
    await enqueue(2);
    await enqueue(3);
    await waitFor(
      async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".log_record where topic = 'orders2'`)).rows[0].n >= 3,
      { what: 'the three rows on orders2', timeoutMs: 20_000 },
    );
    const { rows } = await s.pool.query(
      `select convert_from(value, 'utf8')::jsonb->>'n' as n from "${s.schema}".log_record where topic = 'orders2' order by log_offset`,
    );
    assert.deepEqual(
      rows.map((r) => Number(r.n)),
      [1, 2, 3],
      'the key in commit order on the target',
    );
  } finally {
    await relay.stop();
    await transport.close();
    await s.cleanup();
  }
});
