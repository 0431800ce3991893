/**
 * `zeroloss/kysely`: enqueue inside a Kysely transaction (kysely is an optional peer: install it).
 *
 *   await db.transaction().execute(async (trx) => { …; await outbox.enqueue(fromKysely(trx), message); });
 */
export { fromKysely } from '../adapters/orm/from-kysely.ts';
