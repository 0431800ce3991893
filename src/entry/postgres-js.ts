/**
 * `zeroloss/postgres-js`: enqueue inside a postgres.js transaction (postgres is an optional peer: install it).
 *
 *   await sql.begin(async (sql) => { await sql`insert …`; await outbox.enqueue(fromPostgresJs(sql), message); });
 */
export { fromPostgresJs } from '../adapters/orm/from-postgres-js.ts';
