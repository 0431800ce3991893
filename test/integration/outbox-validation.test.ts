import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgliteDatabase } from '../../src/adapters/postgres/pglite-database.ts';
import type { MessageInput } from '../../src/core/message.ts';

import type { SqlExecutor } from '../../src/ports/sql-executor.ts';
import { freshSchema, inTransaction } from '../helpers/pg.ts';
import { testOutbox } from '../helpers/test-outbox.ts';

const good: MessageInput = { topic: 'orders', key: 'k', type: 'order.created', payload: { n: 1 } };
const LONE_HIGH = '\ud800';
const LONE_LOW = '\udc00';

/**
 * One bad field per case. Postgres refuses NUL in text and jsonb (22021, 22P05) and a lone surrogate is
 * not valid UTF-8; either error would abort the caller's transaction, so each must be refused before SQL.
 */
const cases: Array<{ name: string; field: string; code: string; message: unknown }> = [
  { name: 'NUL in key', field: 'key', code: 'ZL_INVALID_KEY', message: { ...good, key: 'a\u0000b' } },
  { name: 'lone high surrogate in key', field: 'key', code: 'ZL_INVALID_KEY', message: { ...good, key: `a${LONE_HIGH}` } },
  { name: 'lone low surrogate in key', field: 'key', code: 'ZL_INVALID_KEY', message: { ...good, key: `${LONE_LOW}a` } },
  { name: 'non-string key', field: 'key', code: 'ZL_INVALID_KEY', message: { ...good, key: 7 } },
  { name: 'key over 1024 bytes', field: 'key', code: 'ZL_INVALID_KEY', message: { ...good, key: 'é'.repeat(513) } },
  { name: 'NUL in type', field: 'type', code: 'ZL_INVALID_MESSAGE', message: { ...good, type: 'x\u0000' } },
  { name: 'lone surrogate in type', field: 'type', code: 'ZL_INVALID_MESSAGE', message: { ...good, type: `x${LONE_HIGH}` } },
  { name: 'non-string type', field: 'type', code: 'ZL_INVALID_MESSAGE', message: { ...good, type: {} } },
  { name: 'NUL in id', field: 'id', code: 'ZL_INVALID_MESSAGE', message: { ...good, id: 'id\u0000' } },
  { name: 'lone surrogate in id', field: 'id', code: 'ZL_INVALID_MESSAGE', message: { ...good, id: `id${LONE_LOW}` } },
  { name: 'non-string id', field: 'id', code: 'ZL_INVALID_MESSAGE', message: { ...good, id: 12 } },
  { name: 'id over 128 characters', field: 'id', code: 'ZL_INVALID_MESSAGE', message: { ...good, id: 'i'.repeat(129) } },
  { name: 'NUL in topic', field: 'topic', code: 'ZL_INVALID_TOPIC', message: { ...good, topic: 'or\u0000ders' } },
  { name: 'lone surrogate in topic', field: 'topic', code: 'ZL_INVALID_TOPIC', message: { ...good, topic: `orders${LONE_HIGH}` } },
  { name: 'topic over 249 characters', field: 'topic', code: 'ZL_INVALID_TOPIC', message: { ...good, topic: 't'.repeat(250) } },
  { name: 'NUL in traceId', field: 'traceId', code: 'ZL_INVALID_MESSAGE', message: { ...good, traceId: 't\u0000' } },
  { name: 'lone surrogate in traceId', field: 'traceId', code: 'ZL_INVALID_MESSAGE', message: { ...good, traceId: `t${LONE_HIGH}` } },
  { name: 'non-string traceId', field: 'traceId', code: 'ZL_INVALID_MESSAGE', message: { ...good, traceId: 5 } },
  { name: 'NUL in a header name', field: 'headers', code: 'ZL_INVALID_MESSAGE', message: { ...good, headers: { 'a\u0000': 'v' } } },
  {
    name: 'lone surrogate in a header name',
    field: 'headers',
    code: 'ZL_INVALID_MESSAGE',
    message: { ...good, headers: { [`a${LONE_LOW}`]: 'v' } },
  },
  { name: 'NUL in a header value', field: 'headers', code: 'ZL_INVALID_MESSAGE', message: { ...good, headers: { a: 'v\u0000' } } },
  {
    name: 'lone surrogate in a header value',
    field: 'headers',
    code: 'ZL_INVALID_MESSAGE',
    message: { ...good, headers: { a: `v${LONE_HIGH}` } },
  },
  { name: 'too many headers', field: 'headers', code: 'ZL_INVALID_MESSAGE', message: { ...good, headers: manyHeaders(101) } },
  { name: 'headers over 16 KiB', field: 'headers', code: 'ZL_INVALID_MESSAGE', message: { ...good, headers: { a: 'v'.repeat(17_000) } } },
  { name: 'empty header name', field: 'headers', code: 'ZL_INVALID_MESSAGE', message: { ...good, headers: { '': 'v' } } },
];

function manyHeaders(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, 'v']));
}

interface Backend {
  schema: string;
  transaction(fn: (tx: SqlExecutor) => Promise<void>): Promise<void>;
  query<R>(sql: string): Promise<R[]>;
  close(): Promise<void>;
}

async function postgresBackend(): Promise<Backend> {
  const env = await freshSchema('zlt_val');
  return {
    schema: env.schema,
    transaction: (fn) => inTransaction(env.pool, (client) => fn(client)),
    query: async <R>(sql: string) => (await env.pool.query(sql)).rows as R[],
    close: env.cleanup,
  };
}

async function pgliteBackend(): Promise<Backend> {
  const pglite = await PGlite.create();
  await migrate(pgliteDatabase(pglite), 'zlt_val');
  return {
    schema: 'zlt_val',
    transaction: (fn) => pglite.transaction((tx) => fn(tx)),
    query: async <R>(sql: string) => (await pglite.query<R>(sql)).rows,
    close: () => pglite.close(),
  };
}

for (const [name, open] of [
  ['Postgres', postgresBackend],
  ['PGlite', pgliteBackend],
] as const) {
  describe(`enqueue validation on ${name}: every bad field is refused before SQL`, () => {
    let backend: Backend;
    before(async () => {
      backend = await open();
      await backend.query(`create table "${backend.schema}".business (note text not null)`);
    });
    after(async () => {
      await backend.close();
    });

    for (const c of cases) {
      test(`${c.name}: ${c.code}, and the same transaction commits a good message and a business row`, async () => {
        const outbox = testOutbox({ schema: backend.schema });
        await backend.transaction(async (tx) => {
          await assert.rejects(outbox.enqueue(tx, c.message as MessageInput), (error: { code?: string; details?: { field?: string } }) => {
            assert.equal(error.code, c.code, String(error));
            assert.equal(error.details?.field, c.field);
            return true;
          });
          await outbox.enqueue(tx, { ...good, key: c.name });
          await tx.query(`insert into "${backend.schema}".business (note) values ($1)`, [c.name]);
        });
        const outboxRows = await backend.query<{ n: number }>(
          `select count(*)::int as n from "${backend.schema}".outbox where msg_key = '${c.name.replaceAll("'", "''")}'`,
        );
        const businessRows = await backend.query<{ n: number }>(
          `select count(*)::int as n from "${backend.schema}".business where note = '${c.name.replaceAll("'", "''")}'`,
        );
        assert.equal(outboxRows[0]?.n, 1);
        assert.equal(businessRows[0]?.n, 1);
      });
    }

    test('NUL and lone surrogates inside the JSON payload are stored and read back as they were', async () => {
      const outbox = testOutbox({ schema: backend.schema });
      const payload = { text: `a\u0000b${LONE_HIGH}c${LONE_LOW}` };
      let id = '';
      await backend.transaction(async (tx) => {
        id = (await outbox.enqueue(tx, { ...good, key: 'payload', payload })).id;
      });
      const rows = await backend.query<{ payload: Uint8Array }>(
        `select payload from "${backend.schema}".outbox where message_id = '${id}'`,
      );
      assert.deepEqual(JSON.parse(Buffer.from(rows[0]!.payload).toString('utf8')), JSON.parse(JSON.stringify(payload)));
    });
  });
}
