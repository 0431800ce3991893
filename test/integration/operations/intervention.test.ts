import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PostgresDeadLetterStore } from '../../../src/adapters/postgres/postgres-dead-letter-store.ts';
import type { MessageTrace } from '../../../src/operations/trace.ts';

import type { OutboxRowView } from '../../../src/ports/operations-store.ts';
import type { DeadLetterSummary } from '../../../src/ports/dead-letter-store.ts';
import { KAFKA_BROKERS, createTopic, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { zeroloss, zerolossJson } from '../../helpers/ops-cli.ts';
import { PG_URL, freshSchema, inTransaction } from '../../helpers/pg.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';

/** O7: parked rows and dead letters listed with their reasons; release, replay and discard leave an audit. */
describe('manual intervention', () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  before(async () => {
    env = await freshSchema('zlint');
  });
  after(async () => {
    await env.cleanup();
  });

  test('list, release, discard parked rows and dead letters, each audited with who, when and why', async () => {
    const s = `"${env.schema}"`;
    const topic = uniqueTopic('zl-int');
    await createTopic(topic, 1);
    const outbox = testOutbox({ schema: env.schema });
    const [fixable, obsolete] = await inTransaction(env.pool, async (tx) => [
      (await outbox.enqueue(tx, { topic, key: 'k1', type: 'credit', payload: 1 })).id,
      (await outbox.enqueue(tx, { topic, key: 'k2', type: 'credit', payload: { order: 'o-2' } })).id,
    ]);
    // Both were given up on by the relay.
    await env.pool.query(`update ${s}.outbox set state = 3, attempts = 10, last_error = 'UNKNOWN_TOPIC_OR_PARTITION' where true`);
    const letters = new PostgresDeadLetterStore(env.db, { schema: env.schema });
    const dl = async (key: string) =>
      letters.record({
        groupId: 'points',
        idempotencyKey: key,
        messageId: key,
        topic,
        partition: 0,
        offset: 7n,
        key: 'k9',
        type: 'credit',
        headers: { 'zl-id': key },
        payload: Buffer.from('{"n":1}'),
        errorCode: 'ZL_PERMANENT',
        error: 'account closed',
        stack: undefined,
        attempts: 3,
        firstFailureAt: new Date(),
        lastFailureAt: new Date(),
      });
    const toReplay = (await dl('m-replay')).id;
    const toDiscard = (await dl('m-discard')).id;
    const conn = ['--pg', PG_URL, '--schema', env.schema];

    const list = await zerolossJson<{ parked: OutboxRowView[]; deadLetters: DeadLetterSummary[] }>(['parked', 'list', ...conn]);
    assert.deepEqual(
      list.json.parked.map((p) => [p.messageId, p.attempts, p.lastError]).sort(),
      [
        [fixable, 10, 'UNKNOWN_TOPIC_OR_PARTITION'],
        [obsolete, 10, 'UNKNOWN_TOPIC_OR_PARTITION'],
      ].sort(),
    );
    assert.deepEqual(
      list.json.deadLetters.map((d) => [d.id, d.error]).sort(),
      [
        [toDiscard, 'account closed'],
        [toReplay, 'account closed'],
      ].sort(),
    );

    const released = await zeroloss(['parked', 'release', fixable, '--reason', 'topic created', '--actor', 'alice', ...conn]);
    assert.equal(released.code, 0, released.stderr);
    const row = (await env.pool.query(`select state, attempts from ${s}.outbox where message_id = $1`, [fixable])).rows[0];
    assert.deepEqual(row, { state: 0, attempts: 0 }, 'pending again with a fresh set of attempts');
    const tr = (await env.pool.query(`select from_state, to_state, actor from ${s}.outbox_transition where message_id = $1`, [fixable]))
      .rows;
    assert.deepEqual(tr, [{ from_state: 3, to_state: 0, actor: 'alice' }]);
    assert.equal((await zeroloss(['parked', 'release', fixable, ...conn])).code, 1, 'a row no longer parked is reported');

    const noReason = await zeroloss(['parked', 'discard', obsolete, ...conn]);
    assert.equal(noReason.code, 2, 'discard needs a reason');
    assert.match(noReason.stderr, /reason is required/);
    const discarded = await zeroloss(['parked', 'discard', obsolete, '--reason', 'order cancelled', '--actor', 'bob', ...conn]);
    assert.equal(discarded.code, 0, discarded.stderr);
    assert.equal((await env.pool.query(`select 1 from ${s}.outbox where message_id = $1`, [obsolete])).rows.length, 0);

    const replayed = await zeroloss([
      'parked',
      'replay-dlq',
      toReplay,
      '--reason',
      'account reopened',
      '--kafka',
      KAFKA_BROKERS.join(','),
      ...conn,
    ]);
    assert.equal(replayed.code, 0, replayed.stderr);
    const back = await readTopic(topic, { done: (rs) => rs.some((r) => r.headers['zl-id'] === 'm-replay') });
    assert.ok(
      back.some((r) => r.headers['zl-id'] === 'm-replay'),
      'the dead letter is back on its topic',
    );
    assert.equal((await zeroloss(['parked', 'discard-dlq', toDiscard, ...conn])).code, 2);
    assert.equal((await zeroloss(['parked', 'discard-dlq', toDiscard, '--reason', 'duplicate order', ...conn])).code, 0);
    assert.equal((await letters.get(toDiscard))?.status, 'discarded');

    const audit = (await env.pool.query(`select actor, action, subject, message_id, reason, details from ${s}.operation_audit order by id`))
      .rows;
    assert.deepEqual(
      audit.map((a) => [a.action, a.reason]),
      [
        ['outbox.release', 'topic created'],
        ['outbox.discard', 'order cancelled'],
        ['dead-letter.replay', 'account reopened'],
        ['dead-letter.discard', 'duplicate order'],
      ],
    );
    assert.equal(audit[0].actor, 'alice');
    assert.equal(audit[1].actor, 'bob');
    assert.equal(
      Buffer.from(audit[1].details.payload_base64, 'base64').toString(),
      '{"order":"o-2"}',
      'the discarded row is kept in the audit',
    );
    assert.equal(audit[2].message_id, 'm-replay');

    const trace = await zerolossJson<MessageTrace>(['trace', obsolete, ...conn]);
    assert.match(trace.json.stop.reason, /discarded from the outbox by bob .*order cancelled/);
    const auditCmd = await zerolossJson<unknown[]>(['parked', 'audit', ...conn]);
    assert.equal(auditCmd.json.length, 4);
  });
});
