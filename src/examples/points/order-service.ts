import { quoteIdent } from '../../core/identifier.ts';
import { randomWorkerId, snowflakeIds } from '../../core/ids.ts';
import type { Outbox } from '../../outbox/outbox.ts';
import type { Database } from '../../ports/sql-executor.ts';

export const DEDUCT_POINTS = 'points.deduct';

/** "Deduct `points` points from account `accountId` for order `orderId`." */
export interface DeductPoints {
  orderId: string;
  accountId: string;
  points: number;
}

/**
 * The order service: the order row and the "deduct points" message commit in one local transaction
 * through the dedicated outbox table (P1, first shape). The message exists if and only if the order does.
 */
export class OrderService {
  readonly #db: Database;
  readonly #outbox: Outbox;
  readonly #table: string;
  readonly #topic: string;
  readonly #orderId = snowflakeIds({ workerId: randomWorkerId() });

  constructor(db: Database, options: { schema: string; outbox: Outbox; topic: string }) {
    this.#db = db;
    this.#outbox = options.outbox;
    this.#table = `${quoteIdent(options.schema, 'schema')}.shop_order`;
    this.#topic = options.topic;
  }

  async placeOrder(accountId: string, points: number): Promise<DeductPoints> {
    const order: DeductPoints = { orderId: this.#orderId(), accountId, points };
    await this.#db.transaction(async (tx) => {
      await tx.query(`insert into ${this.#table} (order_id, account_id, points) values ($1, $2, $3)`, [order.orderId, accountId, points]);
      await this.#outbox.enqueue(tx, { topic: this.#topic, key: accountId, type: DEDUCT_POINTS, payload: order });
    });
    return order;
  }
}
