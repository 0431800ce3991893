import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HEADER } from '../../../src/core/envelope.ts';
import { kafka } from '../../../src/entry/kafka.ts';
import { postgres } from '../../../src/entry/postgres.ts';
import { createOutbox, createRelay } from '../../../src/index.ts';
import type { MessageInput } from '../../../src/core/message.ts';
import type { SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { KAFKA_BROKERS, readTopic, uniqueTopic } from '../../helpers/kafka.ts';
import { PG_URL, uniqueName } from '../../helpers/pg.ts';

/** What one ORM's test file provides: its own transaction, its business write, and zeroloss's adapter. */
export interface OrmHarness {
  /**
   * Runs `body` in the ORM's own transaction: `orders.insert` is the business write through the ORM,
   * `executor` the adapter under test wrapping the same transaction. Commits when `body` resolves.
   */
  transaction<T>(body: (tx: { executor: SqlExecutor; insertOrder(id: string): Promise<void> }) => Promise<T>): Promise<T>;
  /** The adapter over the ORM's handle that is not a transaction (its root database or client). */
  outsideTransaction(): SqlExecutor;
  close(): Promise<void>;
}

/** A Postgres schema with zeroloss's tables and an `orders` table, a store on it, and a Kafka topic. */
export interface OrmFixture {
  schema: string;
  url: string;
}

/**
 * The acceptance checks every ORM adapter passes against real Postgres and Kafka: a commit writes the same row
 * a `pg` client would (payload bytes and headers compared) and the relay sends it; a rollback leaves no row
 * and sends nothing; a bad message fails with a typed error before any SQL, and the transaction goes on.
 */
export function ormSuite(name: string, open: (fixture: OrmFixture) => Promise<OrmHarness>, options: { notify?: boolean } = {}): void {
  const schema = uniqueName('zlorm');
  const topic = uniqueTopic(`orm-${name}`);
  // notify on by default: the enqueue statement then also returns a pg_notify() column (cast to text), which
  // the ORM's row decoding must accept.
  const store = postgres(PG_URL, { schema, notify: options.notify ?? true });
  const transport = kafka({ brokers: KAFKA_BROKERS });
  const createdAt = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const outbox = createOutbox({ store, producerId: `orm-${name}`, clock: { now: () => createdAt }, maxPayloadBytes: 4096 });
  const committed: string[] = [];
  const rolledBack: string[] = [];
  let orm: OrmHarness;

  const messages = (prefix: string): MessageInput[] => [
    {
      id: `${prefix}-json`,
      traceId: 'trace-1',
      topic,
      key: `${prefix}-k1`,
      type: 'order.created',
      headers: { note: `it's "quoted" \\ ? $1 – ünïcödé 🚀`, empty: '' },
      payload: { orderId: 'o-1', total: 12.5, lines: [{ sku: 'a?b', qty: 2 }], text: "O'Brien $1 ? \\ 🚀", nil: null },
    },
    {
      id: `${prefix}-bytes`,
      traceId: 'trace-2',
      topic,
      key: `${prefix}-k2`,
      type: 'blob.stored',
      payload: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    },
    {
      id: `${prefix}-string`,
      traceId: 'trace-3',
      topic,
      key: `${prefix}-k3`,
      type: 'note.added',
      version: 3,
      payload: 'plain \u0000-free text',
    },
  ];

  const rowsOf = async (ids: string[]) => {
    const { rows } = await store.db.query<{
      message_id: string;
      topic: string;
      msg_key: string;
      msg_type: string;
      headers: Record<string, string>;
      payload: Buffer;
    }>(
      `select message_id, topic, msg_key, msg_type, headers, payload from ${schema}.outbox where message_id = any($1::text[]) order by message_id`,
      [ids],
    );
    return rows;
  };
  const orderExists = async (id: string) => (await store.db.query(`select 1 from ${schema}.orders where id = $1`, [id])).rows.length === 1;

  before(async () => {
    await store.migrate();
    await store.db.query(`create table ${schema}.orders (id text primary key)`);
    await transport.ensureTopic(topic, 1);
    orm = await open({ schema, url: PG_URL });
  });

  after(async () => {
    await orm?.close();
    await transport.close();
    await store.db.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await store.close();
  });

  test(`${name}: commit writes the row a pg client writes, byte for byte, with the business row`, async () => {
    await store.transaction(async (tx) => {
      for (const m of messages('pg')) await outbox.enqueue(tx, m);
    });
    const envelopes = await orm.transaction(async ({ executor, insertOrder }) => {
      await insertOrder('o-commit');
      const out = [];
      for (const m of messages('orm')) out.push(await outbox.enqueue(executor, m));
      return out;
    });
    assert.deepEqual(
      envelopes.map((e) => e.seq),
      [1, 1, 1],
    );
    assert.equal(await orderExists('o-commit'), true);
    const viaPg = await rowsOf(messages('pg').map((m) => m.id as string));
    const viaOrm = await rowsOf(messages('orm').map((m) => m.id as string));
    assert.equal(viaOrm.length, 3);
    for (const [i, row] of viaOrm.entries()) {
      const reference = viaPg[i];
      assert.ok(reference);
      assert.ok(Buffer.isBuffer(row.payload));
      assert.equal(row.payload.equals(reference.payload), true, `payload bytes of ${row.message_id}`);
      const { [HEADER.id]: ormId, ...ormHeaders } = row.headers;
      const { [HEADER.id]: pgId, ...pgHeaders } = reference.headers;
      assert.equal(ormId, row.message_id);
      assert.equal(pgId, reference.message_id);
      assert.deepEqual(ormHeaders, pgHeaders);
      assert.deepEqual([row.topic, row.msg_type], [reference.topic, reference.msg_type]);
    }
    committed.push(...viaPg.map((r) => r.message_id), ...viaOrm.map((r) => r.message_id));
  });

  test(`${name}: rollback leaves neither the business row nor the message`, async () => {
    const failure = new Error('business rule broken');
    await assert.rejects(
      orm.transaction(async ({ executor, insertOrder }) => {
        await insertOrder('o-rollback');
        const envelope = await outbox.enqueue(executor, { topic, key: 'k-rb', type: 'order.created', payload: { n: 1 } });
        rolledBack.push(envelope.id);
        throw failure;
      }),
      (error) => error === failure || (error as { cause?: unknown }).cause === failure,
    );
    assert.equal(rolledBack.length, 1);
    assert.equal(await orderExists('o-rollback'), false);
    assert.deepEqual(await rowsOf(rolledBack), []);
  });

  test(`${name}: a bad message throws a typed error before any SQL and the transaction still commits`, async () => {
    let statements = 0;
    const id = await orm.transaction(async ({ executor, insertOrder }) => {
      await insertOrder('o-bad');
      const counted: SqlExecutor = {
        query: (sql, params) => {
          statements += 1;
          return executor.query(sql, params);
        },
      };
      await assert.rejects(outbox.enqueue(counted, { topic, key: 'k', type: 't', payload: 'x'.repeat(5000) }), {
        code: 'ZL_PAYLOAD_TOO_LARGE',
      });
      await assert.rejects(outbox.enqueue(counted, { topic: 'no spaces allowed', key: 'k', type: 't', payload: 1 }), {
        code: 'ZL_INVALID_TOPIC',
      });
      assert.equal(statements, 0, 'no statement reached the database');
      return (await outbox.enqueue(executor, { topic, key: 'k-after-bad', type: 'order.created', payload: { ok: true } })).id;
    });
    assert.equal(await orderExists('o-bad'), true);
    assert.equal((await rowsOf([id])).length, 1);
    committed.push(id);
  });

  test(`${name}: a handle that is not a transaction is refused, and nothing is written`, async () => {
    // With the root handle the outbox row committed on its own, on another pooled connection: the message
    // went out although the business transaction around it rolled back.
    const id = `${name}-outside`;
    await assert.rejects(
      orm.transaction(async ({ insertOrder }) => {
        await insertOrder('o-outside');
        await outbox.enqueue(orm.outsideTransaction(), { id, topic, key: 'k-out', type: 'order.created', payload: {} });
      }),
      { code: 'ZL_INVALID_CONFIG', message: /needs the transaction the business writes go through/ },
    );
    assert.equal(await orderExists('o-outside'), false);
    assert.deepEqual(await rowsOf([id]), []);
  });

  test(`${name}: the relay sends every committed message to Kafka and nothing rolled back`, async () => {
    const relay = createRelay({ store, transport });
    await relay.start();
    try {
      const records = await readTopic(topic, { timeoutMs: 10_000, done: (rs) => rs.length >= committed.length });
      const sent = records.map((r) => r.headers[HEADER.id]);
      assert.deepEqual([...sent].sort(), [...committed].sort());
      const expected = await rowsOf(committed);
      for (const row of expected) {
        const record = records.find((r) => r.headers[HEADER.id] === row.message_id);
        assert.equal(record?.value.equals(row.payload), true, `Kafka value of ${row.message_id}`);
      }
      for (const id of rolledBack) assert.equal(sent.includes(id), false);
    } finally {
      await relay.stop();
    }
  });
}
