import { randomWorkerId, snowflakeIds } from '../../core/ids.ts';
import type { Outbox } from '../../outbox/outbox.ts';
import type { Database } from '../../ports/sql-executor.ts';
import { orderSql } from './order-sql.ts';

export const ORDER_PLACED = 'order.placed';

/** "Order `orderId` was placed": what inventory, budget and points each deduct from. */
export interface OrderPlaced {
  orderId: string;
  customerId: string;
  sku: string;
  quantity: number;
  /** Charged to the customer's budget. */
  amount: number;
  /** Taken from the customer's points. */
  points: number;
}

/**
 * The order service: the order row and one `order.placed` message commit in one local transaction through
 * the outbox table. The message exists if and only if the order does; each of the three services that act
 * on it reads it in its own consumer group, so the order service knows nothing of them.
 */
export class OrderService {
  readonly #db: Database;
  readonly #outbox: Outbox;
  readonly #schema: string;
  readonly #topic: string;
  readonly #orderId = snowflakeIds({ workerId: randomWorkerId() });

  constructor(db: Database, options: { schema: string; outbox: Outbox; topic: string }) {
    this.#db = db;
    this.#outbox = options.outbox;
    this.#schema = options.schema;
    this.#topic = options.topic;
  }

  async placeOrder(customerId: string, line: { sku: string; quantity: number; amount: number; points: number }): Promise<OrderPlaced> {
    const order: OrderPlaced = { orderId: this.#orderId(), customerId, ...line };
    await this.#db.transaction(async (tx) => {
      await tx.query(orderSql(this.#schema).insertOrder, [order.orderId, customerId, line.sku, line.quantity, line.amount, line.points]);
      // Keyed by customer: one customer's orders reach each service in the order they were placed.
      await this.#outbox.enqueue(tx, { topic: this.#topic, key: customerId, type: ORDER_PLACED, payload: order });
    });
    return order;
  }
}
