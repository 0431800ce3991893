/**
 * `zeroloss/drizzle`: enqueue inside a Drizzle transaction, on node-postgres or postgres.js (drizzle-orm is
 * an optional peer: install it).
 *
 *   await db.transaction(async (tx) => { await tx.insert(orders).values(…); await outbox.enqueue(fromDrizzle(tx), message); });
 */
export { type DrizzleExecutor, fromDrizzle } from '../adapters/orm/from-drizzle.ts';
