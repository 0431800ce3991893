import { z } from 'zod';
import { quoteIdent } from '../../core/identifier.ts';
import type { Consumer } from '../../consumer/consumer.ts';
import type { Handler, HandlerContext } from '../../consumer/handler-registry.ts';
import type { RetryPolicyInput } from '../../consumer/retry-policy.ts';
import { AWARD_TYPES, type AwardMessage, type AwardType, awardMessageType } from './draw-service.ts';

/** One way of handing a prize out. `deliver` returns what was done (waybill, code, ...), stored with the delivery. */
export interface DeliveryHandler {
  awardType: AwardType;
  /** Overrides the consumer's default policy (3 retries, 2 s apart). */
  retry?: RetryPolicyInput;
  deliver: (award: AwardMessage, ctx: HandlerContext) => Promise<Record<string, unknown>>;
}

/**
 * The source's DistributionGoodsFactory: one delivery handler per prize type, each with the retry policy
 * the source gives it. A new prize type is one more entry here.
 */
export const DELIVERY_HANDLERS: readonly DeliveryHandler[] = [
  // Physical goods go through a carrier that is often briefly unavailable: 5 retries.
  { awardType: 'physical', retry: { maxRetries: 5 }, deliver: async (a) => ({ carrier: 'SF', waybill: `SF${a.orderId}` }) },
  // Virtual goods are granted by an internal service; a second failure is not worth waiting for: 1 retry.
  { awardType: 'virtual', retry: { maxRetries: 1 }, deliver: async (a) => ({ account: a.userId, days: 30 }) },
  // Coupons use the default policy: 3 retries, 2 s apart.
  { awardType: 'coupon', deliver: async (a) => ({ code: `CP-${a.orderId.slice(-8)}` }) },
];

const awardSchema = z.object({
  orderId: z.string().min(1),
  userId: z.string().min(1),
  activityId: z.number(),
  strategyId: z.number(),
  awardId: z.string(),
  awardType: z.enum(AWARD_TYPES),
  awardName: z.string(),
});

export interface DeliveryServiceOptions {
  /** Schema holding award_delivery. */
  schema: string;
  handlers?: readonly DeliveryHandler[];
  /** Wraps each handler (the demo injects faults here); identity by default. */
  wrap?: (awardType: AwardType, handler: Handler<AwardMessage>) => Handler<AwardMessage>;
}

/**
 * Registers the delivery service on a consumer: dispatch by prize type (C5), each type's retry policy
 * (C6), and idempotency by order id (C4): the inbox row keyed by order id commits in the same transaction
 * as the delivery row, so a redelivered or duplicated award message hands nothing out twice.
 */
export function registerDeliveryService(consumer: Consumer, options: DeliveryServiceOptions): Consumer {
  const table = `${quoteIdent(options.schema, 'schema')}.award_delivery`;
  const wrap = options.wrap ?? ((_type, handler) => handler);
  for (const h of options.handlers ?? DELIVERY_HANDLERS) {
    const handler: Handler<AwardMessage> = async (message, ctx) => {
      const award = message.payload;
      const detail = await h.deliver(award, ctx);
      await ctx.tx.query(`insert into ${table} (order_id, u_id, award_type, detail) values ($1, $2, $3, $4)`, [
        award.orderId,
        award.userId,
        award.awardType,
        JSON.stringify(detail),
      ]);
    };
    consumer.handle<AwardMessage>(awardMessageType(h.awardType), wrap(h.awardType, handler), {
      schema: awardSchema,
      idempotencyKey: (m) => m.payload.orderId,
      ...(h.retry ? { retry: h.retry } : {}),
    });
  }
  return consumer;
}

/** Retries each prize type gets: its own policy, or the consumer default's. */
export function deliveryRetries(
  defaultRetries: number,
  handlers: readonly DeliveryHandler[] = DELIVERY_HANDLERS,
): Record<AwardType, number> {
  const out = {} as Record<AwardType, number>;
  for (const type of AWARD_TYPES) out[type] = handlers.find((h) => h.awardType === type)?.retry?.maxRetries ?? defaultRetries;
  return out;
}
