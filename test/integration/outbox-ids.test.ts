import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';

import type { SqlExecutor } from '../../src/ports/sql-executor.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

const T0 = Date.UTC(2026, 0, 1);
/** A clock stopped at one millisecond: every id of every outbox is minted in the same millisecond. */
const frozen = { now: () => T0 };

interface Backend {
  schemas: [string, string];
  transaction(fn: (tx: SqlExecutor) => Promise<void>): Promise<void>;
  query<R>(sql: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

async function postgresBackend(): Promise<Backend> {
  const one = await freshSchema('zlt_ids');
  const two = await freshSchema('zlt_ids');
  return {
    schemas: [one.schema, two.schema],
    transaction: (fn) => inTransaction(one.pool, (client) => fn(client)),
    query: async <R>(sql: string, params?: unknown[]) => (await one.pool.query(sql, params)).rows as R[],
    close: async () => {
      await one.cleanup();
      await two.cleanup();
    },
  };
}

async function pgliteBackend(): Promise<Backend> {
  const pglite = await PGlite.create();
  await migrate(pgliteDatabase(pglite), 'zlt_ids_1');
  await migrate(pgliteDatabase(pglite), 'zlt_ids_2');
  return {
    schemas: ['zlt_ids_1', 'zlt_ids_2'],
    transaction: (fn) => pglite.transaction((tx) => fn(tx)),
    query: async <R>(sql: string, params?: unknown[]) => (await pglite.query<R>(sql, params)).rows,
    close: () => pglite.close(),
  };
}

for (const [name, open] of [
  ['Postgres', postgresBackend],
  ['PGlite', pgliteBackend],
] as const) {
  describe(`message ids on ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await open();
      await backend.query(`create table "${backend.schemas[0]}".business (note text not null)`);
    });
    after(async () => {
      await backend.close();
    });

    async function ids(schema: string): Promise<string[]> {
      return (await backend.query<{ message_id: string }>(`select message_id from "${schema}".outbox order by seq_id`)).map(
        (r) => r.message_id,
      );
    }

    test('two outboxes in two databases, same millisecond: default ids never coincide', async () => {
      const [one, two] = backend.schemas.map((schema) => testOutbox({ schema, producerId: 'same-service', clock: frozen }));
      for (const [outbox, schema] of [
        [one!, backend.schemas[0]],
        [two!, backend.schemas[1]],
      ] as const) {
        await backend.transaction(async (tx) => {
          for (let i = 0; i < 200; i++) await outbox.enqueue(tx, { topic: 't', key: `k${i % 7}`, type: 'x', payload: i });
        });
        assert.equal((await ids(schema)).length, 200);
      }
      const first = new Set(await ids(backend.schemas[0]));
      assert.deepEqual(
        (await ids(backend.schemas[1])).filter((id) => first.has(id)),
        [],
        'an id shared by two outboxes would be skipped by a consumer inbox as a duplicate',
      );
    });

    test('a duplicate caller-supplied id is ZL_DUPLICATE_MESSAGE_ID; the transaction commits on, without a sequence gap', async () => {
      const schema = backend.schemas[0];
      const outbox = testOutbox({ schema, producerId: 'dup' });
      const message = { topic: 't', key: 'dup-key', type: 'x', payload: 1 };
      await backend.transaction(async (tx) => {
        assert.equal((await outbox.enqueue(tx, { ...message, id: 'order-1' })).seq, 1);
      });
      await backend.transaction(async (tx) => {
        await assert.rejects(outbox.enqueue(tx, { ...message, id: 'order-1' }), (error: { code?: string; retryable?: boolean }) => {
          assert.equal(error.code, 'ZL_DUPLICATE_MESSAGE_ID', String(error));
          assert.equal(error.retryable, false);
          return true;
        });
        assert.equal((await outbox.enqueue(tx, { ...message, id: 'order-2' })).seq, 2, 'the refused enqueue took no sequence number');
        await assert.rejects(outbox.enqueue(tx, { ...message, id: 'order-2' }), { code: 'ZL_DUPLICATE_MESSAGE_ID' });
        await tx.query(`insert into "${schema}".business (note) values ('after duplicates')`);
      });
      const rows = await backend.query<{ message_id: string; key_seq: string }>(
        `select message_id, key_seq::text from "${schema}".outbox where msg_key = 'dup-key' order by seq_id`,
      );
      assert.deepEqual(
        rows.map((r) => [r.message_id, r.key_seq]),
        [
          ['order-1', '1'],
          ['order-2', '2'],
        ],
      );
      const business = await backend.query<{ n: number }>(
        `select count(*)::int as n from "${schema}".business where note = 'after duplicates'`,
      );
      assert.equal(business[0]?.n, 1);
      const sequence = await backend.query<{ seq: string }>(
        `select seq::text from "${schema}".outbox_key_seq where producer_id = 'dup' and msg_key = 'dup-key'`,
      );
      assert.equal(sequence[0]?.seq, '2', 'the next enqueue of the key continues at 3');
    });

    test('Snowflake with one worker id in two outboxes of one database: the clash is a typed error, not an aborted transaction', async () => {
      const schema = backend.schemas[0];
      const a = testOutbox({ schema, producerId: 'sf-a', ids: { workerId: 9 }, clock: frozen });
      const b = testOutbox({ schema, producerId: 'sf-b', ids: { workerId: 9 }, clock: frozen });
      await backend.transaction(async (tx) => {
        const first = await a.enqueue(tx, { topic: 't', key: 'sf', type: 'x', payload: 1 });
        await assert.rejects(
          b.enqueue(tx, { topic: 't', key: 'sf', type: 'x', payload: 2 }),
          (error: { code?: string; details?: { id?: string } }) => {
            assert.equal(error.code, 'ZL_DUPLICATE_MESSAGE_ID');
            assert.equal(error.details?.id, first.id);
            return true;
          },
        );
        await tx.query(`insert into "${schema}".business (note) values ('after clash')`);
      });
      const business = await backend.query<{ n: number }>(`select count(*)::int as n from "${schema}".business where note = 'after clash'`);
      assert.equal(business[0]?.n, 1);
    });
  });
}
