import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import logicalReplication from 'pg-logical-replication';
import type { PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { migrate } from '../../../src/adapters/postgres/migrations.ts';
import { type PgoutputEvent, PgoutputDecoder } from '../../../src/adapters/postgres/wal/pgoutput-decoder.ts';
import { uniqueName } from '../../helpers/pg.ts';
import { startWalPostgres } from '../../integration/wal-relay/wal-postgres.ts';

/**
 * The lean pgoutput decoder against real pgoutput bytes: a throwaway PostgreSQL with wal_level=logical,
 * the messages read with pg_logical_slot_peek_binary_changes (the same bytes a replication connection
 * carries in XLogData), in text and in binary mode. Checked against the table's own values and against
 * pg-logical-replication's parser.
 */
let instance: PostgresInstance;
let pool: pg.Pool;
let schema: string;
/** A table named outbox in another schema: the needed columns in another order, extra ones, headers nullable. */
let other: string;
const { PgoutputPlugin } = logicalReplication;
const publication = uniqueName('zlp');
const slot = uniqueName('zls');

before(async () => {
  instance = await startWalPostgres('pgoutput');
  pool = new pg.Pool({ connectionString: instance.url, max: 2 });
  schema = uniqueName('zlw');
  other = uniqueName('zlo');
  await migrate(pgDatabase({ pool }), schema);
  await pool.query(`create schema "${other}"`);
  await pool.query(`create table "${other}".outbox (
    note text, payload bytea not null, headers jsonb, msg_key text not null, extra int, topic text not null,
    message_id text not null, seq_id bigint not null)`);
  await pool.query(`create publication "${publication}" for table "${schema}".outbox, "${other}".outbox with (publish = 'insert')`);
  await pool.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
});

after(async () => {
  await pool?.query('select pg_drop_replication_slot($1)', [slot]).catch(() => {});
  await pool?.end().catch(() => {});
  await instance?.stop('fast');
});

interface Stored {
  seq_id: string;
  message_id: string;
  topic: string;
  msg_key: string;
  headers: Record<string, string>;
  payload: Buffer;
}

async function insert(table: string, row: Omit<Stored, 'seq_id'>): Promise<string> {
  const { rows } = await pool.query<{ seq_id: string }>(
    table === schema
      ? `insert into "${table}".outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload)
         values ($1, $2, $3, 't', '', 'p', $4, $5) returning seq_id::text`
      : `insert into "${table}".outbox (seq_id, message_id, topic, msg_key, headers, payload, note)
         values (nextval('${schema}.outbox_seq_id_seq'), $1, $2, $3, $4, $5, 'ignored') returning seq_id::text`,
    [row.message_id, row.topic, row.msg_key, row.headers === null ? null : JSON.stringify(row.headers), row.payload],
  );
  return (rows[0] as { seq_id: string }).seq_id;
}

/** The pgoutput messages not yet consumed from the slot, as the walsender would send them. */
async function peek(binary: boolean): Promise<Buffer[]> {
  const { rows } = await pool.query<{ data: Buffer }>(
    `select data from pg_logical_slot_peek_binary_changes($1, null, null,
       'proto_version', '1', 'publication_names', $2, 'binary', $3)`,
    [slot, publication, String(binary)],
  );
  return rows.map((r) => r.data);
}

async function consume(): Promise<void> {
  await pool.query('select count(*) from pg_logical_slot_get_binary_changes($1, null, null, $2, $3, $4, $5)', [
    slot,
    'proto_version',
    '1',
    'publication_names',
    publication,
  ]);
}

function decodeAll(decoder: PgoutputDecoder, messages: Buffer[]): PgoutputEvent[] {
  return messages.map((m) => decoder.decode(m)).filter((e): e is PgoutputEvent => e !== undefined);
}

const rows: Array<Omit<Stored, 'seq_id'>> = [
  { message_id: 'm-ascii', topic: 'orders', msg_key: 'k1', headers: { a: '1' }, payload: Buffer.from('{"id":1}') },
  {
    message_id: 'm-unicode-ключ',
    topic: 'заказы.日本',
    msg_key: 'ключ-😀-ü',
    headers: { 'x-name': 'Grüße 😀', 'content-type': 'application/json' },
    payload: Buffer.from('{"name":"Zoë 🍕 中文"}'),
  },
  // Every byte value, backslashes and NULs included: bytea's text form escapes them.
  {
    message_id: 'm-bytes',
    topic: 'raw',
    msg_key: 'k\\2',
    headers: {},
    payload: Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256)),
  },
  { message_id: 'm-empty', topic: 'raw', msg_key: '', headers: {}, payload: Buffer.alloc(0) },
  // Incompressible and past the TOAST threshold: stored out of line, streamed whole on insert.
  { message_id: 'm-large', topic: 'raw', msg_key: 'big', headers: { size: '1048576' }, payload: randomBytes(1024 * 1024) },
];

for (const binary of [false, true]) {
  test(`${binary ? 'binary' : 'text'} mode: each outbox insert decodes to its stored bytes, other tables' rows are skipped`, async () => {
    await consume();
    const ids: string[] = [];
    const client = await pool.connect();
    try {
      await client.query('begin');
      for (const row of rows) {
        ids.push(
          (
            await client.query<{ seq_id: string }>(
              `insert into "${schema}".outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload)
               values ($1, $2, $3, 't', '', 'p', $4, $5) returning seq_id::text`,
              [`${row.message_id}-${binary}`, row.topic, row.msg_key, JSON.stringify(row.headers), row.payload],
            )
          ).rows[0]?.seq_id as string,
        );
      }
      await client.query('commit');
    } catch (error) {
      await client.query('rollback');
      throw error;
    } finally {
      client.release();
    }
    await insert(other, rows[0] as Omit<Stored, 'seq_id'>);
    const messages = await peek(binary);
    const events = decodeAll(new PgoutputDecoder(schema), messages);
    assert.deepEqual(
      events.map((e) => e.tag),
      ['begin', 'insert', 'insert', 'insert', 'insert', 'insert', 'commit', 'begin', 'commit'],
    );
    const inserts = events.flatMap((e) => (e.tag === 'insert' ? [e.row] : []));
    assert.deepEqual(
      inserts.map((r) => r.ref),
      ids,
    );
    inserts.forEach((r, i) => {
      const row = rows[i] as Omit<Stored, 'seq_id'>;
      assert.equal(r.messageId, `${row.message_id}-${binary}`);
      assert.equal(r.record.topic, row.topic);
      assert.equal(r.record.key, row.msg_key);
      assert.deepEqual(r.record.headers, row.headers);
      assert.ok(Buffer.isBuffer(r.record.value));
      assert.ok(row.payload.equals(r.record.value as Buffer), `payload of ${row.message_id}`);
    });
    const commits = events.flatMap((e) => (e.tag === 'commit' ? [e.endLsn] : []));
    for (const lsn of commits) assert.match(lsn ?? '', /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);

    // A copied value survives the message buffer being overwritten (node-postgres reuses its receive buffer).
    const reused = Buffer.from(messages.find((m) => m[0] === 0x49) as Buffer);
    const decoder = new PgoutputDecoder(schema);
    decodeAll(
      decoder,
      messages.filter((m) => m[0] === 0x52),
    );
    const event = decoder.decode(reused);
    assert.equal(event?.tag, 'insert');
    reused.fill(0);
    assert.ok(
      (rows[0] as Omit<Stored, 'seq_id'>).payload.equals(event?.tag === 'insert' ? (event.row.record.value as Buffer) : Buffer.alloc(0)),
    );

    if (!binary) {
      // The library's parser on the same bytes agrees.
      const parser = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });
      const parsed = messages.map((m) => parser.parse(m)).filter((m) => m.tag === 'insert' && m.relation.schema === schema);
      assert.deepEqual(
        parsed.map((m) => (m.tag === 'insert' ? String(m.new.seq_id) : '')),
        ids,
      );
      parsed.forEach((m, i) => {
        if (m.tag !== 'insert') return;
        assert.ok(Buffer.from(m.new.payload as Uint8Array).equals(inserts[i]?.record.value as Buffer));
        assert.deepEqual(m.new.headers, inserts[i]?.record.headers);
      });
    }
    await consume();
  });
}

test('columns are found by name: a table of the same name with another column order decodes the same', async () => {
  await consume();
  for (const binary of [false, true]) {
    const row = rows[1] as Omit<Stored, 'seq_id'>;
    const id = await insert(other, row);
    const events = decodeAll(new PgoutputDecoder(other), await peek(binary));
    const inserts = events.flatMap((e) => (e.tag === 'insert' ? [e.row] : []));
    assert.equal(inserts.length, 1);
    assert.equal(inserts[0]?.ref, id);
    assert.equal(inserts[0]?.messageId, row.message_id);
    assert.equal(inserts[0]?.record.key, row.msg_key);
    assert.deepEqual(inserts[0]?.record.headers, row.headers);
    assert.ok(row.payload.equals(inserts[0]?.record.value as Buffer));
    // No state column (a table of the old shape): sent as a row recorded by an update.
    assert.equal(inserts[0]?.insertOnly, false);
    await consume();
  }
});

test('a null needed column, an insert before its relation and a relation without a needed column are errors', async () => {
  await consume();
  await insert(other, { ...(rows[0] as Omit<Stored, 'seq_id'>), headers: null as unknown as Record<string, string> });
  for (const binary of [false, true]) {
    const messages = await peek(binary);
    assert.throws(() => decodeAll(new PgoutputDecoder(other), messages), { code: 'ZL_STORE_UNAVAILABLE', message: /headers is null/ });
    assert.throws(() => new PgoutputDecoder(other).decode(messages.find((m) => m[0] === 0x49) as Buffer), /before its relation/);
  }
  await consume();
  await pool.query(`alter table "${other}".outbox drop column headers`);
  await pool.query(`insert into "${other}".outbox (seq_id, message_id, topic, msg_key, payload) values (1, 'x', 't', 'k', '\\x00')`);
  const messages = await peek(true);
  assert.throws(() => decodeAll(new PgoutputDecoder(other), messages), { code: 'ZL_INVALID_CONFIG', message: /lacks column\(s\) headers/ });
  await consume();
});

test('the state a row was inserted with: 1 (insert-only mode) decodes as insertOnly, 0 as not', async () => {
  await consume();
  for (const binary of [false, true]) {
    const ids: string[] = [];
    for (const state of [1, 0]) {
      const { rows: inserted } = await pool.query<{ seq_id: string }>(
        `insert into "${schema}".outbox (message_id, topic, msg_key, msg_type, trace_id, producer_id, headers, payload, state)
         values ($1, 't', 'k', 't', '', 'p', '{}', '\\x00', $2) returning seq_id::text`,
        [`m-state-${state}-${binary}`, state],
      );
      ids.push(inserted[0]?.seq_id as string);
    }
    const inserts = decodeAll(new PgoutputDecoder(schema), await peek(binary)).flatMap((e) => (e.tag === 'insert' ? [e.row] : []));
    assert.deepEqual(
      inserts.map((r) => [r.ref, r.insertOnly]),
      [
        [ids[0], true],
        [ids[1], false],
      ],
    );
    await consume();
  }
});
