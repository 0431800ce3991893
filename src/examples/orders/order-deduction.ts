import { PermanentError } from '../../core/errors.ts';
import { onceUnderLock } from '../../consumer/guards/once-under-lock.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import type { OrderPlaced } from './order-service.ts';
import { type OrderServiceName, orderSql } from './order-sql.ts';

/** Who applied a deduction: the service's consumer, or the business reconciliation repairing a gap. */
export type AppliedBy = 'consumer' | 'reconciliation';

/** What each service takes for an order, and from which of its rows. */
export function deductionOf(service: OrderServiceName, order: OrderPlaced): { holderId: string; delta: number } {
  switch (service) {
    case 'inventory':
      return { holderId: order.sku, delta: -order.quantity };
    case 'budget':
      return { holderId: order.customerId, delta: -order.amount };
    case 'points':
      return { holderId: order.customerId, delta: -order.points };
  }
}

/**
 * Applies one service's deduction for an order, at most once per order, in the caller's transaction (a
 * handler's `ctx.tx`, or the reconciliation's own). Two paths apply deductions: the service's consumer
 * and the reconciliation's repair. The consumer's inbox makes the first idempotent per message, but it
 * knows nothing of a repair, so the business check ("has this order an entry?") runs under the order's
 * business lock with a second check after taking it: a repair racing a late message applies once.
 * Resolves to whether this call applied it.
 */
export async function applyDeduction(
  tx: SqlExecutor,
  schema: string,
  service: OrderServiceName,
  order: OrderPlaced,
  appliedBy: AppliedBy,
  signal?: AbortSignal,
): Promise<boolean> {
  const sql = orderSql(schema).service[service];
  const { holderId, delta } = deductionOf(service, order);
  const result = await onceUnderLock(tx, {
    lockKey: `${schema}:${service}:${order.orderId}`,
    signal,
    isDone: async (q) => (await q.query<{ done: boolean }>(sql.entryExists, [order.orderId])).rows[0]?.done === true,
    apply: async (q) => {
      const { rows } = await q.query<{ balance: string }>(sql.deduct, [holderId, delta]);
      if (rows.length === 0) {
        const { rows: holder } = await q.query<{ balance: string }>(sql.balance, [holderId]);
        // No retry can make stock, budget or points appear: a permanent failure, dead-lettered at once.
        throw new PermanentError(
          holder[0]
            ? `${service}: ${holderId} has ${holder[0].balance}, order ${order.orderId} needs ${-delta}`
            : `${service}: no ${holderId} to deduct from`,
        );
      }
      await q.query(sql.insertEntry, [order.orderId, order.customerId, holderId, delta, rows[0]?.balance, appliedBy]);
    },
  });
  return result.applied;
}
