import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { Child } from './child-process.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * A WAL relay process that dies between the broker's confirmation of a batch and the slot's: the batch
 * must be sent again by the next holder (a counted duplicate), never skipped.
 */
const CHILD = fileURLToPath(new URL('./wal-relay-child.ts', import.meta.url));

let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('dies');
});
after(async () => {
  await instance?.stop('fast');
});

function relayChild(s: { url: string; schema: string }, env: Record<string, string> = {}): Child {
  return new Child([CHILD], { ZL_PG_URL: s.url, ZL_SCHEMA: s.schema, ZL_KAFKA_BROKERS: KAFKA_BROKERS.join(','), ...env });
}

async function sentCount(pool: pg.Pool, schema: string): Promise<number> {
  return (await pool.query(`select count(*)::int as n from "${schema}".outbox where state = 1`)).rows[0].n;
}

describe('WAL relay killed', () => {
  test('after the broker confirmed a batch, before the slot did: the next holder resends it, nothing skipped', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-dies');
    await createTopic(topic, 2);
    const outbox = testOutbox({ schema: s.schema });
    const dying = relayChild(s, { ZL_DIE_AFTER_BROKER_ACK: '1' }).start();
    let next: Child | undefined;
    try {
      await waitFor(() => dying.output.includes('streaming'), { what: 'the dying relay holding the slot', timeoutMs: 15_000 });
      next = relayChild(s).start();
      for (let i = 0; i < 30; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 4}`, type: 't', payload: { i } }));
      await dying.exited();
      const acked = Number(/acked (\d+)/.exec(dying.output)?.[1]);
      assert.ok(acked > 0, dying.output);
      await waitFor(async () => (await sentCount(s.pool, s.schema)) === 30, { what: 'all recorded by the next holder', timeoutMs: 15_000 });
      const records = await readTopic(topic, { done: (r) => r.length >= 30 + acked, timeoutMs: 10_000 });
      const check = checkTopic(await outboxIds(s.pool, s.schema), new Set(), records);
      assert.deepEqual(
        { lost: check.lost.length, duplicates: check.duplicates, order: check.orderViolations },
        { lost: 0, duplicates: acked, order: 0 },
        'the batch the broker took but the slot never heard of is sent again, once',
      );
    } finally {
      await dying.kill();
      await next?.kill('SIGTERM');
      await s.cleanup();
    }
  });
});
