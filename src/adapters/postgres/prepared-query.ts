import { createHash } from 'node:crypto';
import type { SqlExecutor } from '../../ports/sql-executor.ts';

/** What node-postgres's Client (and PoolClient, and Pool) accept besides `query(text, values)`. */
interface NamedQueryable {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

const names = new Map<string, string>();

/** A stable name per statement text: the same text always maps to the same server-side statement. */
function statementName(sql: string): string {
  let name = names.get(sql);
  if (name === undefined) {
    name = `zl_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    names.set(sql, name);
  }
  return name;
}

/**
 * node-postgres connections (a Client or PoolClient: they carry the connection they prepare on); anything
 * else, PGlite or another driver's adapter, is called the plain way.
 */
function isPgClient(executor: SqlExecutor): boolean {
  const candidate = executor as { connection?: { parsedStatements?: unknown } };
  return typeof candidate.connection === 'object' && candidate.connection !== null && 'parsedStatements' in candidate.connection;
}

/**
 * Runs one of zeroloss's own fixed statements as a named prepared statement where the executor is a
 * node-postgres connection: Postgres parses and plans it once per connection instead of on every call. For
 * the enqueue statement (a CTE) planning was most of its cost: measured with pgbench, the same transaction
 * ran at ~1,500 tx/s unprepared and ~3,100 tx/s prepared. Behind a pooler that does not keep prepared
 * statements (PgBouncer in transaction mode before 1.21), turn it off with `preparedStatements: false`.
 */
export function queryPrepared<R>(executor: SqlExecutor, sql: string, params: unknown[], prepared = true): Promise<{ rows: R[] }> {
  if (!prepared || !isPgClient(executor)) return executor.query<R>(sql, params);
  return (executor as unknown as NamedQueryable).query({ name: statementName(sql), text: sql, values: params }) as Promise<{ rows: R[] }>;
}
