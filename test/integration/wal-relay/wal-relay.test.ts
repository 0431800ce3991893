import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import type { OutgoingRecord } from '../../../src/core/envelope.ts';
import { ZerolossError } from '../../../src/core/errors.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { WalRelay } from '../../../src/outbox/wal-relay.ts';
import type { PublishOutcome, Publisher } from '../../../src/ports/transport.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic, enqueueWorkload } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { confirmedFlush, currentLsn, outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * The WAL relay in process, on a throwaway Postgres with wal_level=logical and the shared Kafka: order per
 * key under concurrent writers, confirmation only after the broker took a batch, and rows that fail for
 * their own reasons handed to the polling path with their key held back.
 */
let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });

before(async () => {
  instance = await startWalPostgres('relay');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
});

function walRelay(s: Awaited<ReturnType<typeof walSchema>>, publisher: Publisher = transport.publisher): WalRelay {
  return createRelay({
    mode: 'wal',
    wal: s.wal,
    transport: { publisher },
    walBatchSize: 200,
    backoff: { baseMs: 100, maxMs: 500, jitter: 0 },
    maxAttempts: 2,
    pollIntervalMs: 100,
  });
}

/** Fails the records `fail` picks for good (the row's own failure), like a record too large for the topic. */
function rejecting(inner: Publisher, fail: (record: OutgoingRecord) => boolean): Publisher {
  return {
    close: () => inner.close(),
    async publish(records) {
      const outcomes: PublishOutcome[] = new Array(records.length);
      const blocked = new Set<string>();
      const pass: number[] = [];
      records.forEach((record, i) => {
        const key = `${record.topic}\u0000${record.key}`;
        if (blocked.has(key)) outcomes[i] = { ok: false, error: new ZerolossError('ZL_SEND_REJECTED', 'held'), attempted: false };
        else if (fail(record)) {
          blocked.add(key);
          outcomes[i] = {
            ok: false,
            error: new ZerolossError('ZL_SEND_REJECTED', 'MESSAGE_TOO_LARGE (test)', { retryable: false }),
            attempted: true,
          };
        } else pass.push(i);
      });
      const sent = await inner.publish(pass.map((i) => records[i] as OutgoingRecord));
      pass.forEach((index, j) => {
        outcomes[index] = sent[j] as PublishOutcome;
      });
      return outcomes;
    },
  };
}

describe('WAL relay', () => {
  test('sends every committed message once, in commit order per key; rolled-back ones never', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-order');
    await createTopic(topic, 4);
    const relay = walRelay(s);
    try {
      await relay.start();
      const result = await enqueueWorkload({
        pool: s.pool,
        outbox: testOutbox({ schema: s.schema }),
        topic,
        messages: 1_500,
        keys: 40,
        workers: 8,
        rollbackRate: 0.1,
        seed: 14,
      });
      assert.ok(result.rolledBack.size > 0, 'the workload rolled some transactions back');
      const ids = await outboxIds(s.pool, s.schema);
      const records = await readTopic(topic, {
        done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size,
        timeoutMs: 20_000,
      });
      const check = checkTopic(ids, result.rolledBack, records);
      assert.deepEqual(
        { lost: check.lost.length, phantom: check.phantom.length, orderViolations: check.orderViolations, duplicates: check.duplicates },
        { lost: 0, phantom: 0, orderViolations: 0, duplicates: 0 },
      );
      // Recorded as sent, with where the broker put them, so trace and status read them as today.
      await waitFor(
        async () =>
          (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1 and sent_offset is not null`)).rows[0]
            .n === ids.size,
        { what: 'every row recorded as sent', timeoutMs: 10_000 },
      );
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('confirms nothing to the slot while the broker has not taken the batch, and sends it all once it does', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-outage');
    await createTopic(topic, 2);
    let down = true;
    let refusedCalls = 0;
    const flaky: Publisher = {
      close: () => transport.publisher.close(),
      async publish(records) {
        if (!down) return transport.publisher.publish(records);
        refusedCalls++;
        const error = new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', 'broker down (test)', { retryable: true });
        return records.map(() => ({ ok: false, error, attempted: true }));
      },
    };
    const relay = walRelay(s, flaky);
    try {
      await relay.start();
      const outbox = testOutbox({ schema: s.schema });
      // An idle relay may confirm a keepalive's position (other WAL, e.g. the server's running-transactions
      // records) at any time before the first outage commit reaches it: the slot may move up to that commit,
      // never past it. `afterFirst` is at or past the first commit's end.
      let afterFirst = 0n;
      for (let i = 0; i < 20; i++) {
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 3}`, type: 't', payload: { i } }));
        if (i === 0) afterFirst = await currentLsn(s.pool);
      }
      await waitFor(() => refusedCalls >= 3, { what: 'the relay retrying through the outage', timeoutMs: 10_000 });
      const during = await confirmedFlush(s.pool, s.wal.slot);
      assert.ok(during < afterFirst, `no confirmation of an outage commit while the broker is down (${during} < ${afterFirst})`);
      const { rows } = await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 0`);
      assert.equal(rows[0].n, 20, 'an outage is no row failure: nothing recorded, nothing handed over');
      down = false;
      const records = await readTopic(topic, { done: (r) => r.length >= 20, timeoutMs: 15_000 });
      assert.equal(new Set(records.map((r) => r.headers['zl-id'])).size, 20);
      await waitFor(async () => (await confirmedFlush(s.pool, s.wal.slot)) >= afterFirst, {
        what: 'the outage commits confirmed',
        timeoutMs: 10_000,
      });
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('a lost slot is created again: rows committed without a slot go through the polling path, nothing skipped, keys in order', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-lost-slot');
    await createTopic(topic, 2);
    const outbox = testOutbox({ schema: s.schema });
    const enqueue = async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: `k${i % 3}`, type: 't', payload: { i } }));
    };
    let relay = walRelay(s);
    try {
      await relay.start();
      await enqueue(0, 30);
      await waitFor(
        async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n === 30,
        {
          what: 'the first rows sent',
        },
      );
      await relay.stop();
      // Rows committed while the slot is gone (dropped by hand, lost in a failover) are in no stream.
      await s.wal.dropSlot();
      await enqueue(30, 60);
      const { handedOver } = await s.wal.createSlot('test');
      assert.equal(handedOver, 30, 'the rows the new slot cannot stream go to the polling path');
      relay = walRelay(s);
      await relay.start();
      await enqueue(60, 90);
      const ids = await outboxIds(s.pool, s.schema);
      const records = await readTopic(topic, {
        done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= ids.size,
        timeoutMs: 20_000,
      });
      const check = checkTopic(ids, new Set(), records);
      assert.deepEqual(
        { committed: check.committed, lost: check.lost.length, order: check.orderViolations },
        { committed: 90, lost: 0, order: 0 },
      );
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });

  test('a row that fails for its own reason goes to the polling path and holds back the later rows of its key', async () => {
    const s = await walSchema(instance.url);
    const topic = uniqueTopic('zl-wal-bad');
    await createTopic(topic, 2);
    const bad = (r: OutgoingRecord) => JSON.parse(r.value.toString()).bad === true;
    const relay = walRelay(s, rejecting(transport.publisher, bad));
    const parked: string[] = [];
    relay.on('parked', (e) => parked.push(...e.messageIds));
    try {
      await relay.start();
      const outbox = testOutbox({ schema: s.schema });
      const ids: Record<string, string[]> = { a: [], b: [] };
      for (let i = 0; i < 6; i++) {
        for (const key of ['a', 'b']) {
          const envelope = await s.store.transaction((tx) =>
            outbox.enqueue(tx, { topic, key, type: 't', payload: { i, bad: key === 'a' && i === 2 } }),
          );
          ids[key]?.push(envelope.id);
        }
      }
      const badId = ids.a?.[2] as string;
      // The polling path retries it (maxAttempts 2, a permanent error parks at once) and parks it.
      await waitFor(() => parked.includes(badId), { what: 'the bad row parked by the polling path', timeoutMs: 15_000 });
      const records = await readTopic(topic, { done: (r) => r.length >= 8, timeoutMs: 15_000 });
      const sentIds = records.map((r) => r.headers['zl-id']);
      assert.deepEqual(
        records.filter((r) => r.key === 'b').map((r) => r.headers['zl-id']),
        ids.b,
        'the other key flows in order',
      );
      assert.deepEqual(
        records.filter((r) => r.key === 'a').map((r) => r.headers['zl-id']),
        ids.a?.slice(0, 2),
        'key a stops before its bad row',
      );
      assert.ok(!sentIds.includes(badId));
      const { rows } = await s.pool.query<{ message_id: string; state: number; last_error: string | null }>(
        `select message_id, state, last_error from "${s.schema}".outbox where msg_key = 'a' order by seq_id`,
      );
      assert.deepEqual(
        rows.map((r) => r.state),
        [1, 1, 3, 2, 2, 2],
        'bad row parked, the later rows of its key wait (never dropped, never sent ahead)',
      );
      assert.match(rows[3]?.last_error ?? '', /held back/);
      // A message of key a committed now is held back too, not sent past the parked one.
      await s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'a', type: 't', payload: { i: 6 } }));
      await waitFor(
        async () =>
          (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where msg_key = 'a' and state = 2`)).rows[0].n === 4,
        { what: 'the new row of key a held back', timeoutMs: 10_000 },
      ).catch(async (error) => {
        const { rows: now } = await s.pool.query(
          `select seq_id, state, attempts, last_error from "${s.schema}".outbox where msg_key = 'a' order by seq_id`,
        );
        throw new Error(`${(error as Error).message}; rows of key a: ${JSON.stringify(now)}`);
      });
    } finally {
      await relay.stop();
      await s.cleanup();
    }
  });
});
