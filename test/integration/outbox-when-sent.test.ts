import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { pglite } from '../../src/adapters/postgres/pglite.ts';
import { postgres } from '../../src/adapters/postgres/postgres.ts';
import { type PostgresStore, postgresStore } from '../../src/adapters/postgres/postgres-store.ts';
import { ZerolossError } from '../../src/core/errors.ts';
import { kafka } from '../../src/entry/kafka.ts';
import { tableLog } from '../../src/entry/table-log.ts';
import { createOutbox, createRelay, type Outbox } from '../../src/index.ts';
import type { Transport } from '../../src/ports/backends.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import type { Publisher } from '../../src/ports/transport.ts';
import { KAFKA_BROKERS, uniqueTopic } from '../helpers/kafka.ts';
import { PG_URL, uniqueName } from '../helpers/pg.ts';
import { RelayProcess } from '../helpers/relay-process.ts';
import { testOutbox } from '../helpers/test-outbox.ts';
import { waitFor } from '../helpers/wait-for.ts';

// The synchronous send mode end to end: a real relay sends through a real transport, and `whenSent` only
// reads the outbox row, as it would with the relay in another process. Each test has a schema of its own.

const fast = { pollIntervalMs: 5, backoff: { baseMs: 20, maxMs: 100, jitter: 0 }, minIntervalMs: 5 };

/** Thrown from a transaction body to roll it back on purpose. */
class Rollback extends Error {}

interface Env {
  store: PostgresStore;
  transport: Transport;
  /** An outbox on the same schema whose own statements (only whenSent's polls: enqueue writes through the caller's tx) are counted. */
  outbox: Outbox;
  queries: { n: number };
  topic: string;
  schema: string;
}

/** The store's database with every statement counted; closing it is the store's business. */
function counting(db: Database, queries: { n: number }): Database {
  return {
    query: (sql, params) => {
      queries.n++;
      return db.query(sql, params);
    },
    transaction: (fn) => db.transaction(fn),
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    close: async () => {},
  };
}

let sharedPglite: Promise<PGlite> | undefined;
after(async () => {
  if (sharedPglite) await (await sharedPglite).close();
});

type Backend = {
  name: string;
  open(schema: string): Promise<{ store: PostgresStore; transport: Transport; topic: string; close(): Promise<void> }>;
};

const postgresTableLog: Backend = {
  name: 'Postgres + table log',
  async open(schema) {
    const store = postgres(PG_URL, { schema, max: 5 });
    return {
      store,
      transport: tableLog(store),
      topic: 'orders',
      async close() {
        await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
        await store.close();
      },
    };
  },
};

const pgliteTableLog: Backend = {
  name: 'PGlite + table log',
  async open(schema) {
    sharedPglite ??= PGlite.create();
    const store = pglite(await sharedPglite, { schema });
    return { store, transport: tableLog(store), topic: 'orders', close: () => store.close() };
  },
};

const postgresKafka: Backend = {
  name: 'Postgres + Kafka',
  async open(schema) {
    const store = postgres(PG_URL, { schema, max: 5 });
    const transport = kafka({ brokers: KAFKA_BROKERS });
    return {
      store,
      transport,
      topic: uniqueTopic('when-sent'),
      async close() {
        await transport.close();
        await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
        await store.close();
      },
    };
  },
};

async function withEnv(backend: Backend, body: (env: Env) => Promise<void>): Promise<void> {
  const schema = uniqueName('zlws');
  const { store, transport, topic, close } = await backend.open(schema);
  try {
    await store.migrate();
    await transport.ensureTopic(topic, 3);
    const queries = { n: 0 };
    const waitStore = postgresStore(counting(store.db, queries), { schema, kind: store.kind });
    const outbox = createOutbox({ store: waitStore, producerId: 'when-sent-test' });
    await body({ store, transport, outbox, queries, topic, schema });
  } finally {
    await close();
  }
}

async function enqueue(env: Env, key: string, n = 1): Promise<string[]> {
  return env.store.transaction(async (tx) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++)
      ids.push((await env.outbox.enqueue(tx, { topic: env.topic, key: `${key}-${i % 10}`, type: 'order.placed', payload: { i } })).id);
    return ids;
  });
}

async function outboxRow(env: Env, id: string) {
  const { rows } = await env.store.db.query<{
    state: number;
    sent_partition: number | null;
    sent_offset: string | null;
    sent_at: Date | null;
  }>(`select state, sent_partition, sent_offset::text as sent_offset, sent_at from "${env.schema}".outbox where message_id = $1`, [id]);
  return rows[0];
}

/** The record the transport holds at exactly that partition and offset. */
async function recordAt(env: Env, partition: number, offset: bigint) {
  const inspector = env.transport.inspector;
  assert.ok(inspector, 'the transport can be read back');
  for await (const record of inspector.read([{ topic: env.topic, partition, from: offset, to: offset + 1n }])) return record;
  return undefined;
}

function startRelay(env: Env, transport: Pick<Transport, 'publisher'> = env.transport) {
  const relay = createRelay({ store: env.store, transport, ...fast });
  return relay.start().then(() => relay);
}

for (const backend of [postgresTableLog, pgliteTableLog, postgresKafka]) {
  describe(`outbox.whenSent on ${backend.name}`, () => {
    test('resolves with the partition and offset the broker gave: the same as the outbox row and the record in the transport', async () => {
      await withEnv(backend, async (env) => {
        const ids = [...(await enqueue(env, 'a', 3)), ...(await enqueue(env, 'b', 3))];
        const relay = await startRelay(env);
        try {
          const sent = await Promise.all(ids.map((id) => env.outbox.whenSent(id, { timeoutMs: 20_000 })));
          for (const [i, s] of sent.entries()) {
            assert.equal(s.id, ids[i]);
            assert.equal(s.topic, env.topic);
            assert.equal(typeof s.partition, 'number');
            assert.equal(typeof s.offset, 'bigint');
            assert.ok(s.sentAt instanceof Date && !Number.isNaN(s.sentAt.getTime()));
            const row = await outboxRow(env, s.id);
            assert.equal(row?.state, 1);
            assert.equal(row?.sent_partition, s.partition);
            assert.equal(row?.sent_offset, s.offset?.toString());
            assert.equal(new Date(row!.sent_at!).getTime(), s.sentAt.getTime());
            const record = await recordAt(env, s.partition!, s.offset!);
            assert.equal(record?.headers['zl-id'], s.id, `the transport holds this message at ${s.partition}/${s.offset}`);
          }
          assert.equal(new Set(sent.map((s) => `${s.partition}/${s.offset}`)).size, sent.length, 'every message has a place of its own');
        } finally {
          await relay.stop();
        }
      });
    });

    if (backend === postgresKafka) {
      test('the relay in another process (`zeroloss relay`): whenSent reads only the outbox row, and resolves with what that relay recorded', async () => {
        await withEnv(backend, async (env) => {
          const ids = await enqueue(env, 'remote', 3);
          const relay = new RelayProcess({ pgUrl: PG_URL, schema: env.schema, brokers: KAFKA_BROKERS });
          relay.start();
          try {
            const sent = await Promise.all(ids.map((id) => env.outbox.whenSent(id, { timeoutMs: 25_000 })));
            for (const s of sent) {
              const row = await outboxRow(env, s.id);
              assert.deepEqual([row?.state, row?.sent_partition, row?.sent_offset], [1, s.partition, s.offset?.toString()]);
              assert.equal((await recordAt(env, s.partition!, s.offset!))?.headers['zl-id'], s.id);
            }
          } catch (error) {
            throw new Error(`${(error as Error).message}\nrelay output:\n${relay.output}`, { cause: error });
          } finally {
            await relay.stop();
          }
        });
      });
      return; // the rest is about the outbox row, not the broker: the table log is enough
    }

    test('a timeout with no relay running rejects with ZL_SEND_TIMEOUT (retryable), and a relay started later still sends the row', async () => {
      await withEnv(backend, async (env) => {
        const [id] = (await enqueue(env, 'late')) as [string];
        const started = performance.now();
        const error = await env.outbox.whenSent(id, { timeoutMs: 300 }).then(
          () => assert.fail('resolved with no relay running'),
          (e: unknown) => e,
        );
        assert.ok(performance.now() - started >= 290, 'it waited for the timeout');
        assert.ok(error instanceof ZerolossError);
        assert.equal(error.code, 'ZL_SEND_TIMEOUT');
        assert.equal(error.retryable, true);
        assert.match(error.message, /kept in the outbox and the relay will still send it/);
        assert.equal(error.details.state, 'pending');
        assert.equal((await outboxRow(env, id))?.state, 0, 'the timeout changed nothing');

        const relay = await startRelay(env);
        try {
          const sent = await env.outbox.whenSent(id, { timeoutMs: 20_000 });
          assert.equal((await outboxRow(env, id))?.sent_offset, sent.offset?.toString());
        } finally {
          await relay.stop();
        }
      });
    });

    test('a rolled-back enqueue rejects at once with ZL_MESSAGE_NOT_FOUND, not at the timeout', async () => {
      await withEnv(backend, async (env) => {
        let id = '';
        await assert.rejects(
          env.store.transaction(async (tx) => {
            id = (await env.outbox.enqueue(tx, { topic: env.topic, key: 'k', type: 'order.placed', payload: {} })).id;
            throw new Rollback();
          }),
          Rollback,
        );
        const started = performance.now();
        await assert.rejects(env.outbox.whenSent(id, { timeoutMs: 20_000 }), (e: unknown) => {
          assert.ok(e instanceof ZerolossError);
          assert.equal(e.code, 'ZL_MESSAGE_NOT_FOUND');
          assert.equal(e.retryable, false);
          assert.match(e.message, /rolled back/);
          return true;
        });
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 2_000, `rejected after ${Math.round(elapsed)} ms`);
      });
    });

    test('a message the broker refuses for good is parked, and its waiter rejects with ZL_MESSAGE_PARKED; other keys still resolve', async () => {
      await withEnv(backend, async (env) => {
        // The real transport, refusing one key for good as a broker refuses a record too large for the topic.
        const real = env.transport.publisher;
        const refusing: Publisher = {
          async publish(records) {
            const outcomes = await real.publish(records.filter((r) => !r.key.startsWith('poison')));
            let next = 0;
            return records.map((r) =>
              r.key.startsWith('poison')
                ? {
                    ok: false as const,
                    attempted: true,
                    error: new ZerolossError('ZL_SEND_REJECTED', 'MESSAGE_TOO_LARGE (injected)', { retryable: false }),
                  }
                : outcomes[next++]!,
            );
          },
          close: () => real.close(),
        };
        const [poison] = (await enqueue(env, 'poison')) as [string];
        const [good] = (await enqueue(env, 'good')) as [string];
        const relay = await startRelay(env, { publisher: refusing });
        try {
          const [parked, sent] = await Promise.allSettled([
            env.outbox.whenSent(poison, { timeoutMs: 20_000 }),
            env.outbox.whenSent(good, { timeoutMs: 20_000 }),
          ]);
          assert.equal(sent.status, 'fulfilled');
          assert.equal(parked.status, 'rejected');
          const error = parked.reason as ZerolossError;
          assert.equal(error.code, 'ZL_MESSAGE_PARKED');
          assert.equal(error.retryable, false);
          assert.match(String(error.details.lastError), /MESSAGE_TOO_LARGE/);
          assert.equal((await outboxRow(env, poison))?.state, 3);
        } finally {
          await relay.stop();
        }
      });
    });

    test('100 concurrent waiters share their polls: a bounded number of queries, not one per waiter per interval', async (t) => {
      await withEnv(backend, async (env) => {
        const ids = await enqueue(env, 'many', 100);
        env.queries.n = 0;
        const started = performance.now();
        const waiting = ids.map((id) => env.outbox.whenSent(id, { timeoutMs: 20_000 }));
        // Several polls with all 100 waiting and nothing sent yet, so the sharing and the backoff both show.
        await waitFor(() => env.queries.n >= 4, { timeoutMs: 10_000, intervalMs: 5, what: 'four polls' });
        const beforeRelay = env.queries.n;
        const relay = await startRelay(env);
        try {
          const sent = await Promise.all(waiting);
          const elapsed = performance.now() - started;
          assert.deepEqual(
            sent.map((s) => s.id),
            ids,
          );
          // Polls are at least 5 ms apart and back off to one per 200 ms: 5+10+…+160 covers the first 315 ms
          // in 6 polls, then one per 200 ms; +2 for timer slack. One query per waiter would be 100 at the first poll.
          const bound = 6 + Math.ceil(Math.max(0, elapsed - 315) / 200) + 2;
          t.diagnostic(
            `${env.queries.n} queries (${beforeRelay} before the relay started) for 100 waiters over ${Math.round(elapsed)} ms (bound ${bound})`,
          );
          assert.ok(env.queries.n >= 1);
          assert.ok(env.queries.n <= bound, `${env.queries.n} queries, bound ${bound}`);
          assert.ok(env.queries.n < 100);
        } finally {
          await relay.stop();
        }
      });
    });
  });
}

test('whenSent refuses a bad id or timeout, and an enqueue-only outbox, with ZL_INVALID_CONFIG', async () => {
  const outbox = testOutbox();
  await assert.rejects(outbox.whenSent('some-id'), { code: 'ZL_INVALID_CONFIG' });
  const store = postgres(PG_URL);
  try {
    const full = createOutbox({ store });
    await assert.rejects(full.whenSent(''), { code: 'ZL_INVALID_CONFIG' });
    await assert.rejects(full.whenSent('x', { timeoutMs: 0 }), { code: 'ZL_INVALID_CONFIG' });
    await assert.rejects(full.whenSent('x', { timeoutMs: 2 ** 31 }), { code: 'ZL_INVALID_CONFIG' });
  } finally {
    await store.close();
  }
});
