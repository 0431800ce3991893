import { z } from 'zod';
import { PermanentError } from '../../core/errors.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { Consumer } from '../../consumer/consumer.ts';
import type { Handler } from '../../consumer/handler-registry.ts';
import { DEDUCT_POINTS, type DeductPoints } from './order-service.ts';

const deductSchema = z.object({
  orderId: z.string().min(1),
  accountId: z.string().min(1),
  points: z.number().int().positive(),
});

/**
 * The points service: applies "deduct N points from account X" exactly once. The balance update, the
 * ledger row and the consumer's inbox row (keyed by order id) commit in one transaction, so a redelivery,
 * a duplicate copy or a crash between effect and offset commit applies nothing twice. An overdraft is a
 * permanent failure: no retry can make the points appear, so it goes straight to dead letters.
 */
export function registerPointsService(
  consumer: Consumer,
  options: { schema: string; wrap?: (handler: Handler<DeductPoints>) => Handler<DeductPoints> },
): Consumer {
  const s = quoteIdent(options.schema, 'schema');
  const handler: Handler<DeductPoints> = async ({ payload: d }, ctx) => {
    const { rows } = await ctx.tx.query<{ balance: string }>(
      `update ${s}.points_account set balance = balance - $2, version = version + 1
       where id = $1 and balance >= $2 returning balance::text as balance`,
      [d.accountId, d.points],
    );
    if (rows.length === 0) {
      const { rows: account } = await ctx.tx.query<{ balance: string }>(
        `select balance::text as balance from ${s}.points_account where id = $1`,
        [d.accountId],
      );
      throw new PermanentError(
        account[0]
          ? `overdraft: account ${d.accountId} has ${account[0].balance} points, order ${d.orderId} needs ${d.points}`
          : `no points account ${d.accountId}`,
      );
    }
    await ctx.tx.query(`insert into ${s}.points_ledger (order_id, account_id, delta, balance_after) values ($1, $2, $3, $4)`, [
      d.orderId,
      d.accountId,
      -d.points,
      rows[0]?.balance,
    ]);
  };
  consumer.handle<DeductPoints>(DEDUCT_POINTS, options.wrap ? options.wrap(handler) : handler, {
    schema: deductSchema,
    idempotencyKey: (m) => m.payload.orderId,
  });
  return consumer;
}
