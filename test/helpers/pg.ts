import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import type { Database } from '../../src/ports/sql-executor.ts';

export const PG_URL = process.env.ZL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** A fresh zeroloss schema on the real Postgres, migrated; dropped by `cleanup`. */
export async function freshSchema(prefix = 'zlt'): Promise<{ pool: pg.Pool; db: Database; schema: string; cleanup: () => Promise<void> }> {
  const schema = uniqueName(prefix);
  const pool = new pg.Pool({ connectionString: PG_URL, max: 20 });
  pool.on('error', () => {});
  const db = pgDatabase({ pool });
  await migrate(db, schema);
  return {
    pool,
    db,
    schema,
    async cleanup() {
      await db.close();
      await pool.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await pool.end();
    },
  };
}

/** Runs fn inside a transaction on a pool client, as an application would. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const value = await fn(client);
    await client.query('commit');
    return value;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
