import { sentCondition } from '../../adapters/postgres/stream-sent-sql.ts';
import { quoteIdent } from '../../core/identifier.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';

/** Balances, counted from the tables. */
export interface PointsBalances {
  /** Sum of the accounts' opening balances. */
  openingTotal: number;
  /** Sum of the balances now. */
  balanceTotal: number;
  /** Points of every committed order. */
  committedPoints: number;
  /** Points deducted, by the ledger. */
  appliedPoints: number;
  /** Points of the orders dead-lettered (rejected). */
  deadLetteredPoints: number;
  /** Accounts whose balance is not their opening balance minus their ledger. */
  accountsOff: number;
  /** openingTotal − appliedPoints = balanceTotal, committedPoints = appliedPoints + deadLetteredPoints, accountsOff = 0. */
  reconciled: boolean;
}

export interface PointsAudit {
  committed: number;
  /** Outbox rows of the points topic the broker acknowledged (recorded on the row, or in a WAL relay batch). */
  published: number;
  parked: number;
  /** Orders with a ledger row. */
  delivered: number;
  deadLettered: number;
  deadLetteredOrders: string[];
  /** Orders with neither a ledger row nor a dead letter. */
  lost: number;
  /** Orders with more than one ledger row. */
  appliedTwice: number;
  deliveredAndDeadLettered: number;
  /** Per account, ledger rows (in commit order) for an order older than the one before. */
  orderViolations: number;
  balances: PointsBalances;
  examples: { lost: string[]; appliedTwice: string[]; outOfOrder: string[] };
  /** Every order in commit order, and each account's opening balance: enough to replay what should have happened. */
  orders: Array<{ orderId: string; accountId: string; points: number }>;
  openingBalances: Map<string, number>;
}

/** Audits the points example. `zerolossSchema` holds the outbox and dead_letter tables. */
export async function auditPoints(
  db: SqlExecutor,
  options: { schema: string; zerolossSchema: string; groupId: string; topic: string },
): Promise<PointsAudit> {
  const s = quoteIdent(options.schema, 'schema');
  const z = quoteIdent(options.zerolossSchema, 'schema');
  const dead = `select idempotency_key from ${z}.dead_letter where consumer_group = $1 and status = 'dead'`;
  const [counts, deadRows, lost, twice, order, orders, accounts] = await Promise.all([
    db.query<Record<string, string>>(
      `select (select count(*) from ${s}.shop_order)::text as committed,
              (select count(*) from ${z}.outbox o where o.topic = $2 and ${sentCondition(z)})::text as published,
              (select count(*) from ${z}.outbox where topic = $2 and state = 3)::text as parked,
              (select count(distinct order_id) from ${s}.points_ledger)::text as delivered,
              (select count(*) from ${s}.shop_order o where exists (select 1 from ${s}.points_ledger l where l.order_id = o.order_id)
                 and o.order_id in (${dead}))::text as both,
              (select coalesce(sum(opening_balance), 0) from ${s}.points_account)::text as opening_total,
              (select coalesce(sum(balance), 0) from ${s}.points_account)::text as balance_total,
              (select coalesce(sum(points), 0) from ${s}.shop_order)::text as committed_points,
              (select coalesce(-sum(delta), 0) from ${s}.points_ledger)::text as applied_points,
              (select coalesce(sum(points), 0) from ${s}.shop_order where order_id in (${dead}))::text as dead_points,
              (select count(*) from ${s}.points_account a
                 where a.balance <> a.opening_balance + coalesce((select sum(delta) from ${s}.points_ledger l where l.account_id = a.id), 0)
              )::text as accounts_off`,
      [options.groupId, options.topic],
    ),
    db.query<{ idempotency_key: string }>(dead, [options.groupId]),
    db.query<{ order_id: string }>(
      `select o.order_id from ${s}.shop_order o
       where not exists (select 1 from ${s}.points_ledger l where l.order_id = o.order_id) and o.order_id not in (${dead})
       order by o.id`,
      [options.groupId],
    ),
    db.query<{ order_id: string }>(`select order_id from ${s}.points_ledger group by order_id having count(*) > 1 order by order_id`),
    db.query<{ order_id: string }>(
      `select order_id from (
         select l.order_id, o.id as placed, lag(o.id) over (partition by l.account_id order by l.id) as previous
         from ${s}.points_ledger l join ${s}.shop_order o on o.order_id = l.order_id
       ) x where previous is not null and placed < previous`,
    ),
    db.query<{ order_id: string; account_id: string; points: string }>(
      `select order_id, account_id, points::text as points from ${s}.shop_order order by id`,
    ),
    db.query<{ id: string; opening_balance: string }>(`select id, opening_balance::text as opening_balance from ${s}.points_account`),
  ]);
  const c = counts.rows[0] as Record<string, string>;
  const n = (key: string) => Number(c[key]);
  const balances: PointsBalances = {
    openingTotal: n('opening_total'),
    balanceTotal: n('balance_total'),
    committedPoints: n('committed_points'),
    appliedPoints: n('applied_points'),
    deadLetteredPoints: n('dead_points'),
    accountsOff: n('accounts_off'),
    reconciled: false,
  };
  balances.reconciled =
    balances.openingTotal - balances.appliedPoints === balances.balanceTotal &&
    balances.committedPoints === balances.appliedPoints + balances.deadLetteredPoints &&
    balances.accountsOff === 0;
  return {
    committed: n('committed'),
    published: n('published'),
    parked: n('parked'),
    delivered: n('delivered'),
    deadLettered: deadRows.rows.length,
    deadLetteredOrders: deadRows.rows.map((r) => r.idempotency_key),
    lost: lost.rows.length,
    appliedTwice: twice.rows.length,
    deliveredAndDeadLettered: n('both'),
    orderViolations: order.rows.length,
    balances,
    examples: {
      lost: lost.rows.slice(0, 5).map((r) => r.order_id),
      appliedTwice: twice.rows.slice(0, 5).map((r) => r.order_id),
      outOfOrder: order.rows.slice(0, 5).map((r) => r.order_id),
    },
    orders: orders.rows.map((r) => ({ orderId: r.order_id, accountId: r.account_id, points: Number(r.points) })),
    openingBalances: new Map(accounts.rows.map((r) => [r.id, Number(r.opening_balance)])),
  };
}

/** Which orders must be rejected: replays each account's orders in commit order against its opening balance. */
export function expectedOverdrafts(
  audit: Pick<PointsAudit, 'orders' | 'openingBalances'>,
  skip: (orderId: string) => boolean = () => false,
): Set<string> {
  const balance = new Map(audit.openingBalances);
  const rejected = new Set<string>();
  for (const o of audit.orders) {
    if (skip(o.orderId)) continue;
    const left = balance.get(o.accountId) ?? 0;
    if (left < o.points) rejected.add(o.orderId);
    else balance.set(o.accountId, left - o.points);
  }
  return rejected;
}

/** The cheap figures for a progress line. */
export async function pointsProgress(
  db: SqlExecutor,
  options: { schema: string; zerolossSchema: string; groupId: string; topic: string },
): Promise<{ committed: number; published: number; delivered: number; deadLettered: number }> {
  const s = quoteIdent(options.schema, 'schema');
  const z = quoteIdent(options.zerolossSchema, 'schema');
  const { rows } = await db.query<Record<string, string>>(
    `select (select count(*) from ${s}.shop_order)::text as committed,
            (select count(*) from ${z}.outbox o where o.topic = $2 and ${sentCondition(z)})::text as published,
            (select count(distinct order_id) from ${s}.points_ledger)::text as delivered,
            (select count(*) from ${z}.dead_letter where consumer_group = $1 and status = 'dead')::text as dead`,
    [options.groupId, options.topic],
  );
  const r = rows[0] as Record<string, string>;
  return { committed: Number(r.committed), published: Number(r.published), delivered: Number(r.delivered), deadLettered: Number(r.dead) };
}
