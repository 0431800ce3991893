import { quoteIdent } from '../../core/identifier.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';
import type { AwardType } from './draw-service.ts';

/** What the databases say happened to the awards: counted from rows, never from in-memory counters. */
export interface LotteryAudit {
  /** Award rows committed (user_strategy_export). */
  committed: number;
  /** Award rows whose mq_state is 1: the broker acknowledged the delivery message. */
  published: number;
  /** Award rows parked by the relay (terminal until a person acts). */
  parked: number;
  /** Orders with at least one delivery row, by prize type. */
  deliveredByType: Record<string, number>;
  delivered: number;
  /** Orders with an open dead letter in the delivery group. */
  deadLettered: number;
  deadLetteredOrders: string[];
  /** Awards with neither a delivery row nor a dead letter. */
  lost: number;
  /** Orders with more than one delivery row. */
  appliedTwice: number;
  /** Orders both delivered and dead-lettered (the dead letter would hand the prize out again on replay). */
  deliveredAndDeadLettered: number;
  /** Per user, deliveries (in their commit order) whose award is older than the delivery before it. */
  orderViolations: number;
  /** A few of the problem orders, for the report. */
  examples: { lost: string[]; appliedTwice: string[]; outOfOrder: string[] };
  awards: Array<{ orderId: string; awardType: AwardType }>;
}

/**
 * Audits a lottery schema. `zerolossSchema` holds the dead_letter table; `groupId` is the delivery
 * service's consumer group. Deliveries of one user run one at a time (their key lane), so the bigserial
 * id of award_delivery is their commit order.
 */
export async function auditLottery(
  db: SqlExecutor,
  options: { schema: string; zerolossSchema: string; groupId: string },
): Promise<LotteryAudit> {
  const s = quoteIdent(options.schema, 'schema');
  const z = quoteIdent(options.zerolossSchema, 'schema');
  const dead = `select idempotency_key from ${z}.dead_letter where consumer_group = $1 and status = 'dead'`;
  const [counts, byType, deadRows, lost, twice, order, awards] = await Promise.all([
    db.query<{ committed: number; published: number; parked: number; both: number }>(
      `select count(*)::int as committed,
              count(*) filter (where mq_state = 1)::int as published,
              count(*) filter (where mq_state = 3)::int as parked,
              count(*) filter (where exists (select 1 from ${s}.award_delivery d where d.order_id = a.order_id)
                                 and a.order_id in (${dead}))::int as both
       from ${s}.user_strategy_export a`,
      [options.groupId],
    ),
    db.query<{ award_type: string; n: number }>(
      `select award_type, count(distinct order_id)::int as n from ${s}.award_delivery group by award_type order by award_type`,
    ),
    db.query<{ idempotency_key: string }>(dead, [options.groupId]),
    db.query<{ order_id: string }>(
      `select a.order_id from ${s}.user_strategy_export a
       where not exists (select 1 from ${s}.award_delivery d where d.order_id = a.order_id)
         and a.order_id not in (${dead})
       order by a.id`,
      [options.groupId],
    ),
    db.query<{ order_id: string }>(`select order_id from ${s}.award_delivery group by order_id having count(*) > 1 order by order_id`),
    db.query<{ order_id: string }>(
      `select order_id from (
         select d.order_id, a.id as award, lag(a.id) over (partition by d.u_id order by d.id) as previous
         from ${s}.award_delivery d join ${s}.user_strategy_export a on a.order_id = d.order_id
       ) x where previous is not null and award < previous`,
    ),
    db.query<{ order_id: string; award_type: AwardType }>(`select order_id, award_type from ${s}.user_strategy_export order by id`),
  ]);
  const c = counts.rows[0] as { committed: number; published: number; parked: number; both: number };
  const deliveredByType = Object.fromEntries(byType.rows.map((r) => [r.award_type, Number(r.n)]));
  return {
    committed: Number(c.committed),
    published: Number(c.published),
    parked: Number(c.parked),
    deliveredByType,
    delivered: Object.values(deliveredByType).reduce((a, b) => a + b, 0),
    deadLettered: deadRows.rows.length,
    deadLetteredOrders: deadRows.rows.map((r) => r.idempotency_key),
    lost: lost.rows.length,
    appliedTwice: twice.rows.length,
    deliveredAndDeadLettered: Number(c.both),
    orderViolations: order.rows.length,
    examples: {
      lost: lost.rows.slice(0, 5).map((r) => r.order_id),
      appliedTwice: twice.rows.slice(0, 5).map((r) => r.order_id),
      outOfOrder: order.rows.slice(0, 5).map((r) => r.order_id),
    },
    awards: awards.rows.map((r) => ({ orderId: r.order_id, awardType: r.award_type })),
  };
}

/** The cheap figures for a progress line. */
export async function lotteryProgress(
  db: SqlExecutor,
  options: { schema: string; zerolossSchema: string; groupId: string },
): Promise<{ committed: number; published: number; delivered: number; deadLettered: number }> {
  const s = quoteIdent(options.schema, 'schema');
  const z = quoteIdent(options.zerolossSchema, 'schema');
  const { rows } = await db.query<{ committed: number; published: number; delivered: number; dead: number }>(
    `select (select count(*) from ${s}.user_strategy_export)::int as committed,
            (select count(*) from ${s}.user_strategy_export where mq_state = 1)::int as published,
            (select count(distinct order_id) from ${s}.award_delivery)::int as delivered,
            (select count(*) from ${z}.dead_letter where consumer_group = $1 and status = 'dead')::int as dead`,
    [options.groupId],
  );
  const r = rows[0] as { committed: number; published: number; delivered: number; dead: number };
  return { committed: Number(r.committed), published: Number(r.published), delivered: Number(r.delivered), deadLettered: Number(r.dead) };
}
