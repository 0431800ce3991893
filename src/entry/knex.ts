/**
 * `zeroloss/knex`: enqueue inside a Knex transaction on Postgres (knex is an optional peer: install it).
 *
 *   await knex.transaction(async (trx) => { await trx('orders').insert(…); await outbox.enqueue(fromKnex(trx), message); });
 */
export { fromKnex } from '../adapters/orm/from-knex.ts';
