import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KafkaPublisher } from '../../../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../../../src/adapters/kafka/kafka-subscriber.ts';
import { dlqCommand } from '../../../src/cli/commands/dlq.ts';
import type { DeadLetterEvent, ProcessedEvent } from '../../../src/consumer/consumer-events.ts';
import { PermanentError } from '../../../src/core/errors.ts';
import {
  BROKERS,
  createEffectTable,
  createTopics,
  insertEffect,
  topicFamily,
  uniqueId,
  zlRecord,
} from '../../helpers/consumer-fixtures.ts';
import { freshSchema, PG_URL } from '../../helpers/pg.ts';
import { testConsumer } from '../../helpers/test-consumer.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { quietly } from '../../helpers/ops-cli.ts';

/**
 * A dead-lettered message delivered again: the relay resent it (a duplicate copy at a later offset), or the
 * consumer died after the dead_letter row committed and before the offset did. The inbox has no row for it
 * (its effect was never applied), so the copy used to run the handler again: a failure that had cleared
 * meanwhile left the message both applied and dead-lettered, and applied after the key's later messages.
 * An open dead letter now answers the claim: the copy is skipped (a duplicate, via the dead letter), the
 * message stays parked, and only a replay applies it, once.
 */
describe('a copy of a dead-lettered message is not applied behind the dead letter', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let publisher: KafkaPublisher;
  before(async () => {
    env = await freshSchema('zlc');
    await createEffectTable(env.db, env.schema);
    publisher = new KafkaPublisher({ brokers: BROKERS });
  });
  after(async () => {
    await publisher?.close();
    await env?.cleanup();
  });

  const effects = async (key: string) =>
    (await env.pool.query(`select message_id from "${env.schema}".effect where msg_key = $1 order by id`, [key])).rows.map(
      (r) => r.message_id as string,
    );

  test('the copy is a duplicate via the dead letter, the key goes on, and a replay applies it once', async () => {
    const topic = uniqueId('zl-dl-again');
    await createTopics(topicFamily(topic), 1);
    const consumer = testConsumer({
      subscriber: new KafkaSubscriber({ brokers: BROKERS, sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, maxWaitMs: 100 }),
      db: env.db,
      publisher,
      schema: env.schema,
      config: { groupId: uniqueId('g'), topics: [topic], commitIntervalMs: 50 },
    });
    const dead: DeadLetterEvent[] = [];
    const processed: ProcessedEvent[] = [];
    consumer.on('dead-letter', (e) => dead.push(e));
    consumer.on('processed', (e) => processed.push(e));
    // The downstream refuses the first run for good, then recovers: a rerun of the same message would succeed.
    let refusals = 1;
    consumer.handle<{ n: number }>('credit', async (m, ctx) => {
      if (m.payload.n === 1 && refusals > 0) {
        refusals--;
        throw new PermanentError('account frozen');
      }
      await insertEffect(ctx.tx, env.schema, { id: m.id, key: m.key, n: m.payload.n, type: m.type });
    });
    const x = zlRecord({ topic, key: 'acct', type: 'credit', payload: { n: 1 } });
    const y = zlRecord({ topic, key: 'acct', type: 'credit', payload: { n: 2 } });
    const xId = x.headers['zl-id'] as string;
    const yId = y.headers['zl-id'] as string;
    await consumer.start();
    try {
      for (const outcome of await publisher.publish([x])) assert.ok(outcome.ok);
      await waitFor(() => dead.length === 1, { what: 'X dead-lettered' });
      // The same bytes again (a resend), then the key's next message.
      for (const outcome of await publisher.publish([x, y])) assert.ok(outcome.ok);
      await waitFor(() => processed.some((e) => e.messageId === yId && e.outcome === 'processed'), { what: 'Y applied' });
      const copy = processed.find((e) => e.messageId === xId);
      assert.deepEqual([copy?.outcome, copy?.via], ['duplicate', 'dead-letter'], 'the copy is skipped behind its dead letter');
      assert.deepEqual(await effects('acct'), [yId], 'X stays parked: not applied, and not after Y');
      const rows = await env.pool.query(`select id::text, status from "${env.schema}".dead_letter where message_id = $1`, [xId]);
      assert.deepEqual(
        rows.rows.map((r) => r.status),
        ['dead'],
      );
      assert.equal(dead.length, 1, 'no second dead letter for the copy');

      // A replay is the operator's decision: its copy is applied, once, even while the row is still 'dead'.
      const cli = ['--pg', PG_URL, '--schema', env.schema, '--kafka', BROKERS.join(','), '--json'];
      assert.equal(await quietly(() => dlqCommand(['replay', rows.rows[0].id as string, ...cli])), 0);
      await waitFor(async () => (await effects('acct')).length === 2, { what: 'the replayed X applied' });
      assert.deepEqual(await effects('acct'), [yId, xId]);
    } finally {
      await consumer.stop();
    }
  });
});
