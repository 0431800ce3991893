/**
 * `zeroloss/typeorm`: enqueue inside a TypeORM transaction on Postgres (typeorm is an optional peer: install it).
 *
 *   await dataSource.transaction(async (manager) => { await manager.insert(Order, …); await outbox.enqueue(fromTypeorm(manager), message); });
 */
export { fromTypeorm } from '../adapters/orm/from-typeorm.ts';
