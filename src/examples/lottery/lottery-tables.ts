import { quoteIdent } from '../../core/identifier.ts';
import type { SqlExecutor } from '../../ports/sql-executor.ts';

/**
 * The lottery's tables. `user_strategy_export` is the award table of the source system: the award row
 * carries its own send state `mq_state` (0 pending, 1 sent, 2 failed, 3 parked) and `modified_time`, and
 * the relay sends the delivery message straight from it (the state-column shape of the outbox, P1).
 *
 * `award_delivery` belongs to the delivery service: one row per prize handed out. It has deliberately no
 * unique index on `order_id`. A production table would carry one as the last guard (C4); the example
 * leaves it off so that a second application of one award would show up as a second row, and the audit
 * can count it, instead of failing as a constraint error. What keeps the count at one is the consumer's
 * inbox alone.
 */
export async function createLotteryTables(db: SqlExecutor, schema: string): Promise<void> {
  const s = quoteIdent(schema, 'schema');
  const statements = [
    `create schema if not exists ${s}`,
    `create table if not exists ${s}.user_strategy_export (
      id             bigserial primary key,
      u_id           text not null,
      activity_id    bigint not null,
      order_id       text not null unique,
      strategy_id    bigint not null,
      award_id       text not null,
      award_type     text not null,
      award_name     text not null,
      mq_state       smallint not null default 0,
      create_time    timestamptz not null default now(),
      modified_time  timestamptz not null default now()
    )`,
    // The relay's scan: unsent awards in id order, and the earlier unsent awards of one user.
    `create index if not exists user_strategy_export_unsent on ${s}.user_strategy_export (id) where mq_state <> 1`,
    `create index if not exists user_strategy_export_user_unsent on ${s}.user_strategy_export (u_id, id) where mq_state <> 1`,
    `create table if not exists ${s}.award_delivery (
      id            bigserial primary key,
      order_id      text not null,
      u_id          text not null,
      award_type    text not null,
      detail        jsonb not null,
      delivered_at  timestamptz not null default now()
    )`,
    `create index if not exists award_delivery_order on ${s}.award_delivery (order_id)`,
  ];
  for (const statement of statements) await db.query(statement);
}
