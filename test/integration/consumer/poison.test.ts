import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { BROKERS, createEffectTable, createTopics, readTopic, topicFamily, uniqueId, zlRecord } from '../../helpers/consumer-fixtures.ts';
import { WorkerProcesses } from '../../helpers/consumer-processes.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { waitFor } from '../../helpers/wait-for.ts';

/**
 * Acceptance 4 (C7): a message whose handler kills the process every time is detected by counting started
 * against finished attempts and dead-lettered after the configured number of crashes, instead of
 * crash-looping; the other messages, including later ones of the same key, keep flowing.
 */
const MAX_STARTS = 3;

describe('poison message', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let workers: WorkerProcesses;
  const topic = uniqueId('zl-poison');

  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    await createTopics(topicFamily(topic), 2);
    workers = new WorkerProcesses({
      ZL_PG_URL: PG_URL,
      ZL_SCHEMA: env.schema,
      ZL_TOPIC: topic,
      ZL_GROUP: uniqueId('g'),
      ZL_KAFKA_BROKERS: BROKERS.join(','),
      ZL_STATIC: '1',
      ZL_MAX_STARTS: String(MAX_STARTS),
    });
    // A supervisor restarting the worker whenever it dies (bounded, so a failure cannot loop forever).
    workers.restartOnDeath = (w) => (workers.deaths.get(w) ?? 0) <= MAX_STARTS + 3;
  });

  after(async () => {
    await workers?.stopAll();
    await env?.cleanup();
  });

  test(`is dead-lettered after ${MAX_STARTS} crashes and the other messages are applied`, async () => {
    const publisher = new KafkaPublisher({ brokers: BROKERS });
    const records = [];
    for (let n = 1; n <= 100; n++) records.push(zlRecord({ topic, key: `k${n % 10}`, type: 'credit', payload: { n } }));
    const poison = zlRecord({ topic, key: 'k3', type: 'poison', payload: { n: 0 } });
    records.push(poison);
    for (let n = 101; n <= 300; n++) records.push(zlRecord({ topic, key: `k${n % 10}`, type: 'credit', payload: { n } }));
    for (const outcome of await publisher.publish(records)) assert.ok(outcome.ok);
    await publisher.close();

    workers.start('w1');
    await waitFor(
      async () => {
        const { rows } = await env.pool.query(
          `select (select count(*)::int from "${env.schema}".effect) as effects, (select count(*)::int from "${env.schema}".dead_letter) as dead`,
        );
        return rows[0].effects === 300 && rows[0].dead === 1;
      },
      { what: '300 effects and one dead letter', timeoutMs: 120_000, intervalMs: 200 },
    ).catch((error) => {
      console.error(workers.logs('w1'), workers.errors.slice(0, 10));
      throw error;
    });

    assert.equal(workers.deaths.get('w1'), MAX_STARTS, `the process died exactly ${MAX_STARTS} times`);
    const { rows } = await env.pool.query(`select message_id, error_code, error, attempts, msg_key from "${env.schema}".dead_letter`);
    assert.equal(rows.length, 1, 'only the poison message is dead; no message that shared the process with it');
    assert.equal(rows[0].message_id, poison.headers['zl-id']);
    assert.equal(rows[0].error_code, 'ZL_POISON_MESSAGE');
    assert.match(rows[0].error, /started 3 times without finishing \(limit 3\)/);
    assert.equal(rows[0].attempts, MAX_STARTS);
    const { rows: effects } = await env.pool.query(
      `select count(*)::int as n, count(distinct message_id)::int as distinct_ids from "${env.schema}".effect`,
    );
    assert.deepEqual(effects[0], { n: 300, distinct_ids: 300 }, 'every other message applied exactly once');
    const { rows: k3 } = await env.pool.query(`select array_agg(n order by id) as ns from "${env.schema}".effect where msg_key = 'k3'`);
    assert.ok((k3[0].ns as number[]).includes(293), "later messages of the poison's key were applied too");
    const dlq = await readTopic(`${topic}.dlq`, 1);
    assert.equal(dlq[0]?.headers['zl-dlq-error-code'], 'ZL_POISON_MESSAGE');
    console.log(`[poison] dead-lettered after ${workers.deaths.get('w1')} crashes; ${effects[0].n} other messages applied once each`);
  });
});
