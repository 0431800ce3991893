import { quoteIdent } from '../../core/identifier.ts';
import { randomWorkerId, snowflakeIds } from '../../core/ids.ts';
import type { StateColumnSource } from '../../adapters/postgres/state-column-source.ts';
import type { PostgresStore } from '../../adapters/postgres/postgres-store.ts';
import type { Database } from '../../ports/sql-executor.ts';

export const AWARD_TYPES = ['physical', 'virtual', 'coupon'] as const;
export type AwardType = (typeof AWARD_TYPES)[number];

export interface Prize {
  awardId: string;
  awardType: AwardType;
  awardName: string;
  /** Relative chance of being drawn. */
  weight: number;
}

/** The activity's prize pool (a strategy of the source system, reduced to weights). */
export const DEFAULT_PRIZES: readonly Prize[] = [
  { awardId: 'A001', awardType: 'physical', awardName: 'bluetooth speaker', weight: 15 },
  { awardId: 'A002', awardType: 'virtual', awardName: '30-day VIP membership', weight: 35 },
  { awardId: 'A003', awardType: 'coupon', awardName: '50-off coupon', weight: 50 },
];

/** A row of user_strategy_export, as the relay's mapping and the draw service see it. */
export interface AwardRow {
  id: number;
  u_id: string;
  activity_id: number;
  order_id: string;
  strategy_id: number;
  award_id: string;
  award_type: AwardType;
  award_name: string;
  mq_state: number;
}

/** The delivery message: what the delivery service needs to hand the prize out. */
export interface AwardMessage {
  orderId: string;
  userId: string;
  activityId: number;
  strategyId: number;
  awardId: string;
  awardType: AwardType;
  awardName: string;
}

/** One message type per prize type, so the consumer's handler registry is the source's handler factory. */
export function awardMessageType(type: AwardType): string {
  return `lottery.award.${type}`;
}

/**
 * The relay's view of user_strategy_export: awards are sent from the award row itself (no outbox table),
 * keyed by user id so one user's awards keep their order, and its `mq_state` moves 0 → 1 on the broker's
 * ack (2 on a failed send, retried by the compensation scan; 3 when parked). `schema` is the award
 * table's; the source's bookkeeping lives in the store's schema.
 */
export function awardSource(
  store: Pick<PostgresStore, 'stateColumnSource'>,
  options: { schema: string; topic: string },
): StateColumnSource<AwardRow> {
  return store.stateColumnSource<AwardRow>({
    name: 'lottery_award',
    table: 'user_strategy_export',
    tableSchema: options.schema,
    idColumn: 'id',
    stateColumn: 'mq_state',
    modifiedColumn: 'modified_time',
    keyColumn: 'u_id',
    producerId: 'lottery-draw',
    toMessage: (row) => ({
      topic: options.topic,
      key: row.u_id,
      type: awardMessageType(row.award_type),
      payload: {
        orderId: row.order_id,
        userId: row.u_id,
        activityId: Number(row.activity_id),
        strategyId: Number(row.strategy_id),
        awardId: row.award_id,
        awardType: row.award_type,
        awardName: row.award_name,
      } satisfies AwardMessage,
    }),
  });
}

/**
 * The draw: pick a prize and write the award row with `mq_state = 0` in one transaction. Nothing else is
 * needed for the delivery message to go out: the relay finds the row (woken at commit) and sends it.
 */
export class DrawService {
  readonly #db: Database;
  readonly #table: string;
  readonly #source: StateColumnSource<AwardRow>;
  readonly #prizes: readonly Prize[];
  readonly #random: () => number;
  readonly #orderId: () => string;
  readonly #activityId: number;
  readonly #strategyId: number;

  constructor(
    db: Database,
    options: {
      schema: string;
      source: StateColumnSource<AwardRow>;
      prizes?: readonly Prize[];
      random?: () => number;
      activityId?: number;
      strategyId?: number;
    },
  ) {
    this.#db = db;
    this.#table = `${quoteIdent(options.schema, 'schema')}.user_strategy_export`;
    this.#source = options.source;
    this.#prizes = options.prizes ?? DEFAULT_PRIZES;
    this.#random = options.random ?? Math.random;
    this.#orderId = snowflakeIds({ workerId: randomWorkerId() });
    this.#activityId = options.activityId ?? 100_001;
    this.#strategyId = options.strategyId ?? 10_001;
  }

  async draw(userId: string): Promise<AwardRow> {
    const prize = pick(this.#prizes, this.#random());
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<AwardRow>(
        `insert into ${this.#table} (u_id, activity_id, order_id, strategy_id, award_id, award_type, award_name, mq_state)
         values ($1, $2, $3, $4, $5, $6, $7, 0) returning *`,
        [userId, this.#activityId, this.#orderId(), this.#strategyId, prize.awardId, prize.awardType, prize.awardName],
      );
      // Delivered at commit only: a rolled-back draw wakes nobody.
      await this.#source.notify(tx);
      return rows[0] as AwardRow;
    });
  }
}

function pick(prizes: readonly Prize[], u: number): Prize {
  const total = prizes.reduce((sum, p) => sum + p.weight, 0);
  let x = u * total;
  for (const prize of prizes) {
    x -= prize.weight;
    if (x < 0) return prize;
  }
  return prizes[prizes.length - 1] as Prize;
}
