import type { SqlExecutor } from '../../ports/sql-executor.ts';
import { type OrderServiceName, orderSql } from './order-sql.ts';

/**
 * Four services' tables in one database (the demo runs them all on one): the order service's
 * `customer_order`; inventory's `stock_item` and `stock_movement`; budget's `budget_account` and
 * `budget_entry`; points' `points_account` and `points_ledger`.
 */
export async function createOrderTables(db: SqlExecutor, schema: string): Promise<void> {
  for (const statement of orderSql(schema).createTables) await db.query(statement);
}

/** Opens stock items (inventory, by sku) or accounts (budget, points: by customer) with `opening` each (idempotent). */
export async function openHolders(
  db: SqlExecutor,
  schema: string,
  service: OrderServiceName,
  ids: string[],
  opening: number,
): Promise<void> {
  await db.query(orderSql(schema).service[service].openHolders, [ids, opening]);
}
