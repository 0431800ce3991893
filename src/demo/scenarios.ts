import { sentCondition } from '../adapters/postgres/stream-sent-sql.ts';
import type { OutgoingRecord } from '../core/envelope.ts';
import { quoteIdent } from '../core/identifier.ts';
import type { Consumer } from '../consumer/consumer.ts';
import { DEFAULT_RETRY_POLICY } from '../consumer/retry-policy.ts';
import { auditLottery, lotteryProgress } from '../examples/lottery/lottery-audit.ts';
import { deliveryRetries, registerDeliveryService } from '../examples/lottery/delivery-service.ts';
import { type AwardType, awardSource, DrawService } from '../examples/lottery/draw-service.ts';
import { createLotteryTables } from '../examples/lottery/lottery-tables.ts';
import { OrderService } from '../examples/points/order-service.ts';
import { auditPoints, expectedOverdrafts, type PointsBalances, pointsProgress } from '../examples/points/points-audit.ts';
import { registerPointsService } from '../examples/points/points-service.ts';
import { createPointsTables, openAccounts } from '../examples/points/points-tables.ts';
import { createOutbox } from '../outbox/outbox.ts';
import type { PostgresStore as Store } from '../adapters/postgres/postgres-store.ts';
import type { RelaySource } from '../ports/outbox-store.ts';
import type { Database } from '../ports/sql-executor.ts';
import { type FaultRates, faultyHandler, plannedDeadLetter, plannedFault } from './fault-plan.ts';
import { orders } from './orders-scenario.ts';
import type { PlannedWait } from './retry-floor.ts';

export const SCENARIOS = ['lottery', 'points', 'orders'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Where one demo run keeps everything: one schema holds the business tables and zeroloss's own. */
export interface ScenarioContext {
  schema: string;
  topic: string;
  groupId: string;
  seed: number;
  /** Orders: how many points deductions the points service skips on purpose (`--skip-points`). */
  skipPoints?: number;
}

export interface Figures {
  committed: number;
  published: number;
  delivered: number;
  deadLettered: number;
}

export interface ScenarioAudit extends Figures {
  parked: number;
  deliveredByType: Record<string, number>;
  lost: number;
  appliedTwice: number;
  orderViolations: number;
  deliveredAndDeadLettered: number;
  /** Dead letters the fault plan (lottery) or the balances (points) call for. */
  expectedDeadLettered: number;
  /** Dead letters that should not exist, and expected ones that do not. */
  unexpectedDeadLetters: number;
  missingDeadLetters: number;
  examples: { lost: string[]; appliedTwice: string[]; outOfOrder: string[] };
  points?: PointsBalances;
  /** Orders: the figures of each service (inventory, budget, points). */
  services?: Record<string, ServiceFigures>;
}

/** One consuming service's figures (orders: each service reads in its own group). */
export interface ServiceFigures {
  applied: number;
  repaired: number;
  deadLettered: number;
  lost: number;
  appliedTwice: number;
  deliveredAndDeadLettered: number;
  orderViolations: number;
  deducted: number;
  holdersOff: number;
}

/** Orders: the business-level reconciliation after the run, by order id, per service. */
export interface BusinessReconciliation {
  orders: number;
  /** First pass: orders placed but not deducted by the service. */
  found: Record<string, string[]>;
  /** First pass: of those, the ones it applied. */
  repaired: Record<string, string[]>;
  /** Deductions the demo skipped on purpose (`--skip-points`): what `found` must be. */
  skipped: Record<string, string[]>;
  appliedTwice: Record<string, string[]>;
  orphans: Record<string, number>;
  failed: Array<{ service: string; orderId: string; reason: string }>;
  firstPassClean: boolean;
  secondPassClean: boolean;
  foundExactlySkipped: boolean;
  /** Found exactly the skipped ones, repaired all it found, and the second pass is clean. */
  ok: boolean;
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  /** What one unit of workload is called. */
  unit: string;
  groupId: string;
  /** Consumer groups, each its own consumer in every consumer instance; default `[groupId]`. */
  groups?: readonly string[];
  partitions: number;
  /** Main thread: business tables, and seed data for `users` users. */
  prepare(db: Database, ctx: ScenarioContext, users: string[], units: number): Promise<void>;
  /** Main thread: one unit of business work (a draw, an order) for a user. */
  producer(store: Store, ctx: ScenarioContext, random: () => number): (user: string) => Promise<void>;
  /** In a relay: where the messages come from. */
  relaySource(store: Store, ctx: ScenarioContext): RelaySource;
  /** In a consumer of `groupId`: the service's handlers, with the planned faults. */
  register(consumer: Consumer, ctx: ScenarioContext, groupId: string): void;
  progress(db: Database, ctx: ScenarioContext): Promise<Figures>;
  audit(db: Database, ctx: ScenarioContext): Promise<ScenarioAudit>;
  /** Records the transport already acknowledged, byte for byte, to publish again as broker-level duplicates. */
  sentRecords(db: Database, ctx: ScenarioContext, limit: number): Promise<OutgoingRecord[]>;
  /** Main thread, after the instances stopped and before the audit: a business-level reconciliation. */
  reconcile?(db: Database, ctx: ScenarioContext): Promise<BusinessReconciliation>;
  /** Lottery: every published message with its planned retries, in each key's order (retry-floor.ts). */
  plannedWaits?(db: Database, ctx: ScenarioContext): Promise<PlannedWait[]>;
}

export const LOTTERY_FAULTS: FaultRates = { permanent: 0.005, beyondPolicy: 0.01, transient: 0.04 };
export const POINTS_FAULTS: FaultRates = { permanent: 0, beyondPolicy: 0, transient: 0.04 };
const POINTS_PER_ORDER = { min: 20, max: 200 };

const lottery: Scenario = {
  name: 'lottery',
  title: 'lottery prize delivery (E1)',
  unit: 'draws',
  groupId: 'lottery-delivery',
  partitions: 8,
  async prepare(db, ctx) {
    await createLotteryTables(db, ctx.schema);
  },
  producer(store, ctx, random) {
    const draws = new DrawService(store.db, { schema: ctx.schema, source: awardSource(store, ctx), random });
    return async (user) => {
      await draws.draw(user);
    };
  },
  relaySource: (store, ctx) => awardSource(store, ctx),
  register(consumer, ctx) {
    const retries = deliveryRetries(DEFAULT_RETRY_POLICY.maxRetries);
    registerDeliveryService(consumer, {
      schema: ctx.schema,
      wrap: (type, handler) => faultyHandler(handler, (award) => plannedFault(ctx.seed, award.orderId, retries[type], LOTTERY_FAULTS)),
    });
  },
  progress: (db, ctx) => lotteryProgress(db, { schema: ctx.schema, zerolossSchema: ctx.schema, groupId: ctx.groupId }),
  async audit(db, ctx) {
    const a = await auditLottery(db, { schema: ctx.schema, zerolossSchema: ctx.schema, groupId: ctx.groupId });
    const retries = deliveryRetries(DEFAULT_RETRY_POLICY.maxRetries);
    const expected = new Set(
      a.awards
        .filter((w) => plannedDeadLetter(plannedFault(ctx.seed, w.orderId, retries[w.awardType], LOTTERY_FAULTS), retries[w.awardType]))
        .map((w) => w.orderId),
    );
    const { awards: _awards, deadLetteredOrders, ...figures } = a;
    return { ...figures, ...compareDeadLetters(expected, deadLetteredOrders) };
  },
  async sentRecords(db, ctx, limit) {
    const s = quoteIdent(ctx.schema, 'schema');
    const { rows } = await db.query<{ u_id: string; headers: Record<string, string>; payload: Uint8Array }>(
      `select b.u_id, r.headers, r.payload from ${s}.source_row r join ${s}.user_strategy_export b on r.row_id = b.id::text
       where r.source = 'lottery_award' and b.mq_state = 1 and r.payload is not null order by random() limit $1`,
      [limit],
    );
    return rows.map((r) => ({ topic: ctx.topic, key: r.u_id, headers: r.headers, value: Buffer.from(r.payload) }));
  },
  async plannedWaits(db, ctx) {
    const s = quoteIdent(ctx.schema, 'schema');
    const retries = deliveryRetries(DEFAULT_RETRY_POLICY.maxRetries);
    // modified_time is when the relay marked the row sent (mq_state 1): the message's publish time.
    const { rows } = await db.query<{ u_id: string; order_id: string; award_type: AwardType; sent_ms: number }>(
      `select u_id, order_id, award_type, (extract(epoch from modified_time) * 1000)::float8 as sent_ms
       from ${s}.user_strategy_export where mq_state = 1 order by u_id, id`,
    );
    return rows.map((r) => {
      const fault = plannedFault(ctx.seed, r.order_id, retries[r.award_type], LOTTERY_FAULTS);
      return { key: r.u_id, sentAtMs: Number(r.sent_ms), retries: fault.permanent ? 0 : Math.min(fault.failures, retries[r.award_type]) };
    });
  },
};

const points: Scenario = {
  name: 'points',
  title: 'loyalty points (E2)',
  unit: 'orders',
  groupId: 'points-service',
  partitions: 8,
  async prepare(db, ctx, users, units) {
    await createPointsTables(db, ctx.schema);
    // Opening balances about equal to what an account's orders ask for on average, so that some accounts
    // run dry and their last orders are rejected as overdrafts.
    const perAccount = units / Math.max(1, users.length);
    const opening = Math.max(100, Math.round((perAccount * (POINTS_PER_ORDER.min + POINTS_PER_ORDER.max)) / 2 / 100) * 100);
    await openAccounts(db, ctx.schema, users, opening);
  },
  producer(store, ctx, random) {
    const outbox = createOutbox({ store, producerId: 'order-service' });
    const orders = new OrderService(store.db, { schema: ctx.schema, outbox, topic: ctx.topic });
    return async (account) => {
      const span = (POINTS_PER_ORDER.max - POINTS_PER_ORDER.min) / 10;
      await orders.placeOrder(account, POINTS_PER_ORDER.min + 10 * Math.floor(random() * (span + 1)));
    };
  },
  relaySource: (store) => store.relaySource,
  register(consumer, ctx) {
    registerPointsService(consumer, {
      schema: ctx.schema,
      wrap: (handler) => faultyHandler(handler, (d) => plannedFault(ctx.seed, d.orderId, DEFAULT_RETRY_POLICY.maxRetries, POINTS_FAULTS)),
    });
  },
  progress: (db, ctx) => pointsProgress(db, { schema: ctx.schema, zerolossSchema: ctx.schema, groupId: ctx.groupId, topic: ctx.topic }),
  async audit(db, ctx) {
    const a = await auditPoints(db, { schema: ctx.schema, zerolossSchema: ctx.schema, groupId: ctx.groupId, topic: ctx.topic });
    // Transient faults always end in success here, so the only rejections are the overdrafts.
    const expected = expectedOverdrafts(a);
    const { orders: _orders, openingBalances: _opening, deadLetteredOrders, balances, ...figures } = a;
    return {
      ...figures,
      deliveredByType: { deducted: a.delivered },
      points: balances,
      ...compareDeadLetters(expected, deadLetteredOrders),
    };
  },
  async sentRecords(db, ctx, limit) {
    const s = quoteIdent(ctx.schema, 'schema');
    const { rows } = await db.query<{ topic: string; msg_key: string; headers: Record<string, string>; payload: Uint8Array }>(
      `select o.topic, o.msg_key, o.headers, o.payload from ${s}.outbox o where o.topic = $1 and ${sentCondition(s)} order by random() limit $2`,
      [ctx.topic, limit],
    );
    return rows.map((r) => ({ topic: r.topic, key: r.msg_key, headers: r.headers, value: Buffer.from(r.payload) }));
  },
};

export const scenarios: Record<ScenarioName, Scenario> = { lottery, points, orders };

function compareDeadLetters(expected: Set<string>, actual: string[]) {
  const dead = new Set(actual);
  return {
    expectedDeadLettered: expected.size,
    unexpectedDeadLetters: [...dead].filter((id) => !expected.has(id)).length,
    missingDeadLetters: [...expected].filter((id) => !dead.has(id)).length,
  };
}
