import { z } from 'zod';
import type { Consumer } from '../../consumer/consumer.ts';
import type { Handler } from '../../consumer/handler-registry.ts';
import { applyDeduction } from './order-deduction.ts';
import { ORDER_PLACED, type OrderPlaced } from './order-service.ts';
import type { OrderServiceName } from './order-sql.ts';

const orderPlacedSchema = z.object({
  orderId: z.string().min(1),
  customerId: z.string().min(1),
  sku: z.string().min(1),
  quantity: z.number().int().positive(),
  amount: z.number().int().positive(),
  points: z.number().int().positive(),
});

/** Each service reads the order topic in its own consumer group, so each has its own offsets and inbox rows. */
export const SERVICE_GROUPS: Record<OrderServiceName, string> = {
  inventory: 'inventory-service',
  budget: 'budget-service',
  points: 'points-service',
};

/**
 * One of the services that act on a placed order (inventory takes stock, budget charges the customer's
 * budget, points takes the customer's points), registered on a consumer of that service's group. The
 * consumer's inbox row (keyed by order id), the holder's update and the entry row commit in one
 * transaction, so a redelivery, a duplicate copy or a crash between effect and offset commit applies
 * nothing twice.
 */
export function registerOrderService(
  consumer: Consumer,
  service: OrderServiceName,
  options: { schema: string; wrap?: (handler: Handler<OrderPlaced>) => Handler<OrderPlaced> },
): Consumer {
  const handler: Handler<OrderPlaced> = async ({ payload }, ctx) => {
    await applyDeduction(ctx.tx, options.schema, service, payload, 'consumer', ctx.signal);
  };
  consumer.handle<OrderPlaced>(ORDER_PLACED, options.wrap ? options.wrap(handler) : handler, {
    schema: orderPlacedSchema,
    idempotencyKey: (m) => m.payload.orderId,
  });
  return consumer;
}
