import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { kafka } from '../../../src/adapters/kafka/kafka-transport.ts';
import { postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { createRelay } from '../../../src/outbox/create-relay.ts';
import type { Database, SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { createTopic, KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { checkTopic } from '../../helpers/producer-workload.ts';
import { testOutbox } from '../../helpers/test-outbox.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { outboxIds, startWalPostgres, walSchema } from './wal-postgres.ts';

/**
 * `--create-slot` creates the slot, then hands the rows committed before it to the polling path. Another
 * relay (a standby waiting for the slot, as in the fault suite's wal-slot-lost) may find the slot in
 * between: it must not stream a key's new rows while that key's older rows are still being handed over,
 * or the new ones reach the topic first. The hand-over is held at its statement by a wrapper of the
 * Database port, so the window is as wide as the test needs.
 */
let instance: PostgresInstance;
const transport = kafka({ brokers: KAFKA_BROKERS });
before(async () => {
  instance = await startWalPostgres('create-race');
});
after(async () => {
  await transport.close();
  await instance?.stop('fast');
});

/** `db` whose hand-over statement (autocommit or in a transaction) waits for `gate` once it is reached. */
function holdingHandOver(db: Database, reached: () => void, gate: Promise<void>): Database {
  const wrap = (inner: SqlExecutor): SqlExecutor => ({
    async query(sql, params) {
      if (sql.includes('handed to the polling path when the WAL slot was created')) {
        reached();
        await gate;
      }
      return inner.query(sql, params);
    },
  });
  return {
    query: wrap(db).query as Database['query'],
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    close: () => db.close(),
  };
}

test('a relay finding the slot while --create-slot hands older rows over does not send their key ahead of them', async () => {
  const s = await walSchema(instance.url, { createSlot: false });
  const topic = uniqueTopic('zl-wal-create-race');
  await createTopic(topic, 2);
  const outbox = testOutbox({ schema: s.schema });
  const enqueue = (i: number) => s.store.transaction((tx) => outbox.enqueue(tx, { topic, key: 'a', type: 't', payload: { i } }));
  const sent = async () => (await s.pool.query(`select count(*)::int as n from "${s.schema}".outbox where state = 1`)).rows[0].n as number;
  const relay = createRelay({
    mode: 'wal',
    wal: s.wal,
    transport,
    backoff: { baseMs: 100, maxMs: 500, jitter: 0 },
    pollIntervalMs: 100,
    standbyRetryMs: 200,
  });
  const states: string[] = [];
  relay.on('slot', (e) => states.push(e.state));
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  try {
    // Committed before the slot: not in its stream, the hand-over's to send.
    await enqueue(1);
    await enqueue(2);
    let reached = () => {};
    const atHandOver = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const creator = postgresWal(
      { db: holdingHandOver(s.store.db, reached, gate), schema: s.schema, relaySource: s.store.relaySource, kind: 'postgres' },
      { url: s.url },
    );
    const creating = creator.createSlot('test');
    creating.catch(() => {});
    await atHandOver;
    await relay.start();
    await waitFor(() => states.length > 0, { what: 'the relay taking the slot or standing by', timeoutMs: 20_000 });
    // After the slot's consistent point: in the stream.
    await enqueue(3);
    // A relay streaming now sends it at once; give it the time to, so that the outcome is certain.
    if (states[0] === 'streaming') await waitFor(async () => (await sent()) >= 1, { what: 'the streamed row sent', timeoutMs: 20_000 });
    release();
    // The streamed row too when no relay sent it first: the hand-over takes every row unsent at its commit.
    assert.ok((await creating).handedOver >= 2);
    await waitFor(async () => (await sent()) === 3, { what: 'every row sent', timeoutMs: 30_000 });
    const ids = await outboxIds(s.pool, s.schema);
    const records = await readTopic(topic, { done: (r) => new Set(r.map((x) => x.headers['zl-id'])).size >= 3, timeoutMs: 20_000 });
    const check = checkTopic(ids, new Set(), records);
    assert.deepEqual(
      { lost: check.lost.length, orderViolations: check.orderViolations },
      { lost: 0, orderViolations: 0 },
      `relay first said ${states[0]}; topic order ${records.map((r) => r.headers['zl-seq']).join(' ')}`,
    );
  } finally {
    release();
    await relay.stop();
    await s.cleanup();
  }
});
