import { quoteIdent } from '../../core/identifier.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';

/**
 * Two services' tables in one database (the demo runs both on one): the order service's `shop_order`,
 * and the points service's `points_account` and `points_ledger`. Like the lottery's award_delivery, the
 * ledger has no unique index on `order_id` on purpose, so that a deduction applied twice would be counted
 * by the audit rather than refused by a constraint.
 */
export async function createPointsTables(db: SqlExecutor, schema: string): Promise<void> {
  const s = quoteIdent(schema, 'schema');
  const statements = [
    `create schema if not exists ${s}`,
    `create table if not exists ${s}.shop_order (
      id          bigserial primary key,
      order_id    text not null unique,
      account_id  text not null,
      points      bigint not null check (points > 0),
      created_at  timestamptz not null default now()
    )`,
    `create table if not exists ${s}.points_account (
      id                text primary key,
      opening_balance   bigint not null check (opening_balance >= 0),
      balance           bigint not null check (balance >= 0),
      version           bigint not null default 0
    )`,
    `create table if not exists ${s}.points_ledger (
      id             bigserial primary key,
      order_id       text not null,
      account_id     text not null,
      delta          bigint not null,
      balance_after  bigint not null,
      created_at     timestamptz not null default now()
    )`,
    `create index if not exists points_ledger_order on ${s}.points_ledger (order_id)`,
  ];
  for (const statement of statements) await db.query(statement);
}

/** Opens `count` accounts `<prefix>0..` with `balance` points each (idempotent). */
export async function openAccounts(db: SqlExecutor, schema: string, ids: string[], balance: number): Promise<void> {
  const s = quoteIdent(schema, 'schema');
  await db.query(
    `insert into ${s}.points_account (id, opening_balance, balance)
     select id, $2, $2 from unnest($1::text[]) as id on conflict (id) do nothing`,
    [ids, balance],
  );
}
