import { sentCondition } from '../../adapters/postgres/stream-sent-sql.ts';
import { quoteIdent } from '../../core/identifier.ts';

/**
 * Every statement of the order fan-out example, in one place: the order service's table, the three
 * services' tables, their deductions, the business reconciliation and the audit. Identifiers are the fixed
 * names below (the schema validated and quoted); values are always parameters.
 *
 * The three deducting services share one shape, so one set of statements serves them all: a holder table
 * (a stock item, a budget account, a points account: opening amount, balance, version) and an entry table
 * (one row per applied deduction, by order id). The entry tables have no unique index on `order_id` on
 * purpose: a deduction applied twice must be counted by the audit, not refused by a constraint.
 */

export const SERVICES = ['inventory', 'budget', 'points'] as const;
export type OrderServiceName = (typeof SERVICES)[number];

const TABLES: Record<OrderServiceName, { holder: string; entry: string }> = {
  inventory: { holder: 'stock_item', entry: 'stock_movement' },
  budget: { holder: 'budget_account', entry: 'budget_entry' },
  points: { holder: 'points_account', entry: 'points_ledger' },
};

export interface ServiceSql {
  /** Parameters: holder id, delta (negative). Returns the balance after; no row: the holder cannot cover it. */
  deduct: string;
  /** Parameters: holder id. */
  balance: string;
  /** Parameters: order id, customer id, holder id, delta, balance after, applied by. */
  insertEntry: string;
  /** Parameters: order id. The idempotency check of the business operation, independent of any inbox. */
  entryExists: string;
  /** Parameters: ids, opening amount. Idempotent. */
  openHolders: string;
  /** Parameters: grace in ms (orders younger than this are still in flight), limit. */
  missing: string;
  /** Parameters: limit. Orders with more than one entry. */
  appliedTwice: string;
  /** Entries whose order does not exist. */
  orphans: string;
  /** Counts for the audit: orders with an entry, holders off their entries, deducted total. */
  figures: string;
  /** Per customer, entries applied from messages that are older than the one applied before them. */
  outOfOrder: string;
}

export interface OrderSql {
  createTables: string[];
  /** Parameters: order id, customer id, sku, quantity, amount, points. */
  insertOrder: string;
  /** Parameters: order ids. */
  ordersById: string;
  /** Number of orders. */
  orderCount: string;
  service: Record<OrderServiceName, ServiceSql>;
}

const cache = new Map<string, OrderSql>();

/** The statements for the example's tables in `schema`. */
export function orderSql(schema: string): OrderSql {
  const hit = cache.get(schema);
  if (hit) return hit;
  const s = quoteIdent(schema, 'schema');
  const order = `${s}.customer_order`;
  const service = Object.fromEntries(SERVICES.map((name) => [name, serviceSql(s, order, TABLES[name])])) as Record<
    OrderServiceName,
    ServiceSql
  >;
  const sql: OrderSql = {
    createTables: [
      `create schema if not exists ${s}`,
      `create table if not exists ${order} (
        id           bigserial primary key,
        order_id     text not null unique,
        customer_id  text not null,
        sku          text not null,
        quantity     bigint not null check (quantity > 0),
        amount       bigint not null check (amount > 0),
        points       bigint not null check (points > 0),
        created_at   timestamptz not null default now()
      )`,
      ...SERVICES.flatMap((name) => holderTables(s, TABLES[name])),
    ],
    insertOrder: `insert into ${order} (order_id, customer_id, sku, quantity, amount, points) values ($1, $2, $3, $4, $5, $6)`,
    ordersById: `select order_id, customer_id, sku, quantity::int as quantity, amount::int as amount, points::int as points
      from ${order} where order_id = any($1::text[]) order by id`,
    orderCount: `select count(*)::int as n from ${order}`,
    service,
  };
  cache.set(schema, sql);
  return sql;
}

function holderTables(s: string, t: { holder: string; entry: string }): string[] {
  const holder = `${s}.${quoteIdent(t.holder, 'table')}`;
  const entry = `${s}.${quoteIdent(t.entry, 'table')}`;
  return [
    `create table if not exists ${holder} (
      id       text primary key,
      opening  bigint not null check (opening >= 0),
      balance  bigint not null check (balance >= 0),
      version  bigint not null default 0
    )`,
    // applied_by tells a consumer's deduction from one the reconciliation repaired.
    `create table if not exists ${entry} (
      id             bigserial primary key,
      order_id       text not null,
      customer_id    text not null,
      holder_id      text not null,
      delta          bigint not null,
      balance_after  bigint not null,
      applied_by     text not null check (applied_by in ('consumer', 'reconciliation')),
      created_at     timestamptz not null default now()
    )`,
    `create index if not exists ${quoteIdent(`${t.entry}_order`, 'index')} on ${entry} (order_id)`,
  ];
}

function serviceSql(s: string, order: string, t: { holder: string; entry: string }): ServiceSql {
  const holder = `${s}.${quoteIdent(t.holder, 'table')}`;
  const entry = `${s}.${quoteIdent(t.entry, 'table')}`;
  return {
    deduct: `update ${holder} set balance = balance + $2, version = version + 1
      where id = $1 and balance + $2 >= 0 returning balance::text as balance`,
    balance: `select balance::text as balance from ${holder} where id = $1`,
    insertEntry: `insert into ${entry} (order_id, customer_id, holder_id, delta, balance_after, applied_by)
      values ($1, $2, $3, $4, $5, $6)`,
    entryExists: `select exists (select 1 from ${entry} where order_id = $1) as done`,
    openHolders: `insert into ${holder} (id, opening, balance) select id, $2, $2 from unnest($1::text[]) as id
      on conflict (id) do nothing`,
    missing: `select o.order_id from ${order} o
      where o.created_at <= now() - ($1::double precision * interval '1 millisecond')
        and not exists (select 1 from ${entry} e where e.order_id = o.order_id)
      order by o.id limit $2`,
    appliedTwice: `select order_id from ${entry} group by order_id having count(*) > 1 order by order_id limit $1`,
    orphans: `select count(*)::int as n from ${entry} e where not exists (select 1 from ${order} o where o.order_id = e.order_id)`,
    figures: `select
        (select count(distinct order_id) from ${entry})::int as applied,
        (select count(*) from ${entry} where applied_by = 'reconciliation')::int as repaired,
        (select coalesce(-sum(delta), 0) from ${entry})::text as deducted,
        (select count(*) from ${holder} h
           where h.balance <> h.opening + coalesce((select sum(delta) from ${entry} e where e.holder_id = h.id), 0))::int as holders_off`,
    outOfOrder: `select order_id from (
        select e.order_id, o.id as placed, lag(o.id) over (partition by e.customer_id order by e.id) as previous
        from ${entry} e join ${order} o on o.order_id = e.order_id where e.applied_by = 'consumer'
      ) x where previous is not null and placed < previous`,
  };
}

/**
 * The audit's look into zeroloss's own tables (in `zerolossSchema`): a group's dead letters, and how many
 * orders every group has consumed (an inbox row in each), which says when the run has settled. The
 * business reconciliation never reads these: it compares business tables only.
 */
export function auditSql(schema: string, zerolossSchema: string) {
  const s = quoteIdent(schema, 'schema');
  const z = quoteIdent(zerolossSchema, 'schema');
  return {
    /** Parameters: group. */
    deadLetters: `select idempotency_key from ${z}.dead_letter where consumer_group = $1 and status = 'dead'`,
    /** Parameters: groups, topic. Published: sent, as recorded on the row or in a WAL relay batch (stream-sent-sql.ts). */
    progress: `select
        (select count(*) from ${s}.customer_order)::int as committed,
        (select count(*) from ${z}.outbox o where o.topic = $2 and ${sentCondition(z)})::int as published,
        (select count(*) from ${z}.outbox where topic = $2 and state = 3)::int as parked,
        (select count(*) from ${s}.customer_order o where (
           select count(*) from ${z}.inbox i where i.consumer_group = any($1::text[]) and i.idempotency_key = o.order_id
         ) = cardinality($1::text[]))::int as consumed,
        (select count(*) from ${z}.dead_letter where consumer_group = any($1::text[]) and status = 'dead')::int as dead`,
  };
}
