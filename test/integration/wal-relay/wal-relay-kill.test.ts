import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic, enqueueWorkload } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { Child } from './child-process.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * WAL relay processes SIGKILLed as the slot's holder at random moments under concurrent writers, with a
 * standby waiting to take over. Counts come from the outbox table and from reading the topic back, never
 * from the relay's own counters.
 */
const CHILD = fileURLToPath(new URL('./wal-relay-child.ts', import.meta.url));

let instance: PostgresInstance;
before(async () => {
  instance = await startWalPostgres('kill');
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
  test('the holder SIGKILLed five times under concurrent writers: 0 lost, per-key order, duplicates counted, each takeover < 10 s', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-kills');
    await createTopic(topic, 4);
    const children = [relayChild(s).start()];
    // 10 s for a takeover; the first holder's process start may take longer on a loaded machine.
    const holder = async (timeoutMs = 10_000) =>
      waitFor(() => children.find((c) => c.alive && c.output.includes('streaming')), {
        what: `a relay holding the slot (outputs: ${JSON.stringify(children.map((c) => c.output.slice(-300)))})`,
        timeoutMs,
        intervalMs: 10,
      });
    const takeovers: number[] = [];
    try {
      await holder(30_000);
      // Two standbys up front: a process start takes seconds on a loaded machine, and every kill below
      // must find one waiting, as in production.
      children.push(relayChild(s).start(), relayChild(s).start());
      const outbox = testOutbox({ schema: s.schema });
      const rolledBack = new Set<string>();
      for (let kill = 0; kill < 5; kill++) {
        const current = await holder();
        await waitFor(() => children.find((c) => c !== current && c.alive && c.output.includes('standby')), {
          what: 'a relay standing by',
          timeoutMs: 20_000,
          intervalMs: 10,
        });
        // A burst of concurrent writers, then the kill while the holder is still streaming it.
        const at = await sentCount(s.pool, s.schema);
        const burst = await enqueueWorkload({
          pool: s.pool,
          outbox,
          topic,
          messages: 200,
          keys: 50,
          workers: 8,
          rollbackRate: 0.05,
          seed: 1414 + kill,
        });
        for (const id of burst.rolledBack) rolledBack.add(id);
        await waitFor(async () => (await sentCount(s.pool, s.schema)) > at, {
          what: 'progress before the kill',
          timeoutMs: 15_000,
          intervalMs: 5,
        });
        await current.kill();
        const killedAt = Date.now();
        children.push(relayChild(s).start());
        await holder();
        takeovers.push(Date.now() - killedAt);
      }
      const ids = await outboxIds(s.pool, s.schema);
      const records = await readTopic(topic, {
        done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size,
        timeoutMs: 20_000,
      });
      const check = checkTopic(ids, rolledBack, records);
      console.log(
        `committed ${check.committed}, on topic ${check.onTopic}, duplicates ${check.duplicates}, takeovers ms ${takeovers.join(' ')}`,
      );
      assert.deepEqual(
        { committed: check.committed, lost: check.lost.length, phantom: check.phantom.length, orderViolations: check.orderViolations },
        { committed: 1_000, lost: 0, phantom: 0, orderViolations: 0 },
      );
      assert.ok(Math.max(...takeovers) < 10_000, `takeovers ${takeovers}`);
    } finally {
      await Promise.all(children.map((c) => c.kill()));
      await s.cleanup();
    }
  });
});
