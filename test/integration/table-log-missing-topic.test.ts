import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import { TableLogAdmin } from '../../src/adapters/table-log/table-log-admin.ts';
import { TableLogPublisher } from '../../src/adapters/table-log/table-log-publisher.ts';

import { Relay } from '../../src/outbox/relay.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

// The embedded transport answers a missing topic as Kafka does: its rows wait, uncharged and never parked,
// and flow once the topic exists. Before, the table log said ZL_UNKNOWN_TOPIC, which the relay charged, so
// a topic created after maxAttempts rounds found its rows parked and needing a person.
describe('relay over the table log: a topic that does not exist yet', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zltlmiss');
  });
  after(async () => {
    await env.cleanup();
  });

  test('its rows wait without being charged or parked, the others flow, and they flow once it is created', async () => {
    const admin = new TableLogAdmin(env.db, { schema: env.schema });
    await admin.createTopic('present', 2);
    const outbox = testOutbox({ schema: env.schema });
    await inTransaction(env.pool, async (tx) => {
      for (let i = 0; i < 10; i++) await outbox.enqueue(tx, { topic: 'later', key: `m-${i}`, type: 'x', payload: { i } });
      for (let i = 0; i < 30; i++) await outbox.enqueue(tx, { topic: 'present', key: `k-${i % 5}`, type: 'x', payload: { i } });
    });
    const relay = new Relay({
      sources: new PostgresOutboxStore(env.db, { schema: env.schema }),
      publisher: new TableLogPublisher(env.db, { schema: env.schema }),
      // Two attempts would park a charged row after two rounds; the waiting rows see many more than that.
      config: { batchSize: 20, maxAttempts: 2, backoff: { baseMs: 50, maxMs: 100, jitter: 0 }, minIntervalMs: 5 },
    });
    const count = async (where: string) =>
      Number((await env.pool.query<{ n: string }>(`select count(*) as n from "${env.schema}".outbox where ${where}`)).rows[0]?.n);
    await relay.start();
    try {
      await waitFor(async () => (await count(`topic = 'present' and state = 1`)) === 30, {
        what: 'the rows of the existing topic sent',
        timeoutMs: 15_000,
      });
      const metric = relay.registry.getSingleMetric('zeroloss_relay_topic_unavailable_total');
      await waitFor(async () => ((await metric?.get())?.values.find((v) => v.labels.topic === 'later')?.value ?? 0) >= 30, {
        what: 'the rows of the missing topic deferred in several rounds (3 per row)',
        timeoutMs: 15_000,
      });
      // A claim counts its attempt up front and an uncharged failure takes it back, so a row inside a round
      // shows attempts 1 (seen failing once under load). Look between rounds: no row of the topic leased. A
      // charged deferral would leave attempts at 1 there, and park the rows after the second round.
      await waitFor(async () => (await count(`topic = 'later' and lease_owner is null and attempts = 0 and state <> 3`)) === 10, {
        what: 'a snapshot between rounds: all 10 waiting rows unleased, uncharged, not parked',
        timeoutMs: 15_000,
      });
      assert.equal(await count(`topic = 'later' and state = 3`), 0, 'nothing parked');
      assert.equal(await count(`topic = 'later' and last_error like 'ZL_TOPIC_UNAVAILABLE:%'`), 10);

      await admin.createTopic('later', 2);
      await waitFor(async () => (await count(`topic = 'later' and state = 1`)) === 10, {
        what: 'the waiting rows sent once the topic exists, without a release',
        timeoutMs: 20_000,
      });
    } finally {
      await relay.stop();
    }
  });
});
