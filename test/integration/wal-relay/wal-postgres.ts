import pg from 'pg';
import { startPostgresInstance, type PostgresInstance } from '../../../infra/services/postgres-instance.ts';
import { freePort } from '../../../infra/services/port-open.ts';
import { pgDatabase } from '../../../src/adapters/postgres/pg-database.ts';
import { postgres } from '../../../src/adapters/postgres/postgres.ts';
import type { PostgresStore } from '../../../src/adapters/postgres/postgres-store.ts';
import { type PostgresWal, postgresWal } from '../../../src/adapters/postgres/wal/postgres-wal.ts';
import { migrate } from '../../../src/adapters/postgres/migrations.ts';
import type { Database, SqlExecutor } from '../../../src/ports/sql-executor.ts';
import { uniqueName } from '../../helpers/pg.ts';

/**
 * A throwaway Postgres with logical decoding for the WAL relay's tests (the shared server on 5432 keeps
 * wal_level=replica and is never touched). One instance per test file, on a free port.
 */
export async function startWalPostgres(name: string): Promise<PostgresInstance> {
  return startPostgresInstance({
    port: await freePort(),
    name: `wal-${name}`,
    settings: { wal_level: 'logical', max_wal_senders: 20, max_replication_slots: 20, wal_sender_timeout: '10s' },
  });
}

export interface WalSchema {
  url: string;
  schema: string;
  pool: pg.Pool;
  store: PostgresStore;
  wal: PostgresWal;
  cleanup(): Promise<void>;
}

/** A fresh schema with its slot created (as `relay --mode wal --create-slot` does). */
export async function walSchema(url: string, options: { createSlot?: boolean } = {}): Promise<WalSchema> {
  const schema = uniqueName('zlw');
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  pool.on('error', () => {});
  await migrate(pgDatabase({ pool }), schema);
  const store = postgres(url, { schema });
  const wal = postgresWal(store, { url });
  if (options.createSlot !== false) await wal.createSlot('test');
  return {
    url,
    schema,
    pool,
    store,
    wal,
    async cleanup() {
      await wal.dropSlot().catch(() => {});
      await pool.query(`drop publication if exists "${wal.publication}"`).catch(() => {});
      await pool.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await store.close().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

/** The slot's confirmed position, as a number for comparisons. */
export async function confirmedFlush(pool: pg.Pool, slot: string): Promise<bigint> {
  const { rows } = await pool.query<{ lsn: string | null }>(
    'select (confirmed_flush_lsn - $2::pg_lsn)::text as lsn from pg_replication_slots where slot_name = $1',
    [slot, '0/0'],
  );
  return BigInt(rows[0]?.lsn?.split('.')[0] ?? '0');
}

/** The server's current WAL insert position, as a number (same scale as `confirmedFlush`). */
export async function currentLsn(pool: pg.Pool): Promise<bigint> {
  const { rows } = await pool.query<{ lsn: string }>("select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text as lsn");
  return BigInt(rows[0]?.lsn.split('.')[0] ?? '0');
}

/** Ids of committed outbox rows (the database is the authority for what must reach the topic). */
export async function outboxIds(pool: pg.Pool, schema: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ message_id: string }>(`select message_id from "${schema}".outbox`);
  return new Set(rows.map((r) => r.message_id));
}

/**
 * `db` with `before` run ahead of every statement, autocommit or in a transaction: it may wait (to hold a
 * statement at a chosen point) or throw (to fail it, as a dying process would).
 */
export function beforeEachStatement(db: Database, before: (sql: string) => Promise<void> | void): Database {
  const wrap = (inner: SqlExecutor): SqlExecutor => ({
    async query(sql, params) {
      await before(sql);
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
