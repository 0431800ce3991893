import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { compatibilityPartitioner, Producer, ProduceAcks } from '@platformatic/kafka';
import { createAdmin, ensureTopic } from '../../src/adapters/kafka/kafka-admin.ts';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { pgDatabase } from '../../src/adapters/postgres/pg-database.ts';
import { envelopeHeaders, type OutgoingRecord } from '../../src/core/envelope.ts';
import type { Database, SqlExecutor } from '../../src/ports/sql-executor.ts';

/** Where the benchmarks run: one broker and one database for every path, so ratios compare like with like. */
export interface BenchEnv {
  pgUrl: string;
  brokers: string[];
  /** Progress lines (stderr), so `--json` keeps stdout clean. */
  log: (line: string) => void;
  /** Offered rate of the end-to-end benchmark, messages per second. */
  e2eRate?: number;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export function uniqueTopic(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface BenchSchema {
  schema: string;
  pool: pg.Pool;
  db: Database;
  drop(): Promise<void>;
}

/** A fresh, migrated zeroloss schema plus the business tables; `drop` removes it. */
export async function benchSchema(env: BenchEnv, prefix: string, poolSize = 10): Promise<BenchSchema> {
  const schema = uniqueName(prefix);
  const pool = new pg.Pool({ connectionString: env.pgUrl, max: poolSize });
  pool.on('error', () => {});
  const db = pgDatabase({ pool });
  await migrate(db, schema);
  await createBusinessTables(db, schema);
  return {
    schema,
    pool,
    db,
    async drop() {
      await db.close().catch(() => {});
      await pool.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

export const CUSTOMERS = 1_000;

/**
 * The business side of every workload. An order is placed with two statements (insert the order, charge
 * the customer's balance); the consumer's effect is one insert into `effect`.
 */
export async function createBusinessTables(db: SqlExecutor, schema: string): Promise<void> {
  const s = `"${schema}"`;
  await db.query(`create table ${s}.customer (id integer primary key, balance bigint not null)`);
  await db.query(`insert into ${s}.customer (id, balance) select g, 1000000 from generate_series(0, ${CUSTOMERS - 1}) g`);
  await db.query(`create table ${s}.orders (
    id bigserial primary key, customer_id integer not null, amount integer not null, created_at timestamptz not null default now())`);
  await db.query(`create table ${s}.effect (
    id bigserial primary key, message_id text not null, msg_key text not null, amount integer not null,
    applied_at timestamptz not null default now())`);
}

/** The business transaction's own statements (without begin/commit). */
export async function placeOrder(tx: SqlExecutor, schema: string, customer: number, amount: number): Promise<string> {
  const { rows } = await tx.query<{ id: string }>(
    `insert into "${schema}".orders (customer_id, amount) values ($1, $2) returning id::text`,
    [customer, amount],
  );
  await tx.query(`update "${schema}".customer set balance = balance - $2 where id = $1`, [customer, amount]);
  return rows[0]?.id ?? '';
}

/** The consumer's effect. */
export async function applyEffect(tx: SqlExecutor, schema: string, messageId: string, key: string, amount: number): Promise<void> {
  await tx.query(`insert into "${schema}".effect (message_id, msg_key, amount) values ($1, $2, $3)`, [messageId, key, amount]);
}

export async function createTopic(env: BenchEnv, topic: string, partitions: number): Promise<void> {
  const admin = createAdmin(env.brokers);
  try {
    await ensureTopic(admin, { topic, partitions });
    // Wait for leaders, so the first timed send does not pay for topic creation.
    for (let i = 0; i < 300; i++) {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
      if (metadata?.topics.get(topic)?.partitions.every((p) => p.leader >= 0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`topic ${topic} has no leaders after 30 s`);
  } finally {
    await admin.close();
  }
}

export async function deleteTopics(env: BenchEnv, topics: string[]): Promise<void> {
  const admin = createAdmin(env.brokers);
  try {
    await admin.deleteTopics({ topics }).catch(() => {});
  } finally {
    await admin.close();
  }
}

/** The payload every workload sends: a small order event, about 100 bytes of JSON. */
export function orderPayload(i: number, key: string): { orderId: string; customer: string; amount: number; note: string } {
  return { orderId: `o-${i}`, customer: key, amount: 1 + (i % 100), note: 'benchmark order event, padded to ~100 B' };
}

export function keyOf(i: number, keys: number): string {
  return `c-${i % keys}`;
}

/**
 * A record exactly as the relay would send it (JSON payload, envelope headers), so the raw baseline and
 * the relay put the same bytes on the wire.
 */
export function zeroRecord(topic: string, i: number, keys: number, seq = 0): OutgoingRecord {
  const key = keyOf(i, keys);
  const id = `${Date.now()}${String(i).padStart(8, '0')}${randomBytes(2).toString('hex')}`;
  return {
    topic,
    key,
    value: Buffer.from(JSON.stringify(orderPayload(i, key)), 'utf8'),
    headers: envelopeHeaders(
      {
        id,
        traceId: id,
        type: 'order.placed',
        version: 1,
        key,
        producerId: 'bench',
        seq,
        createdAt: new Date().toISOString(),
        headers: {},
      },
      'application/json',
    ),
  };
}

/** The raw client with the same durability settings the KafkaPublisher uses (acks=all, idempotent, murmur2). */
export function rawProducer(env: BenchEnv, clientId = 'zl-bench-raw'): Producer<string, Buffer, string, string> {
  return new Producer({
    clientId,
    bootstrapBrokers: env.brokers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    partitioner: compatibilityPartitioner,
    timeout: 10_000,
    retries: 5,
    retryDelay: 200,
    serializers: {
      key: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
      headerKey: (key?: string) => (key === undefined ? undefined : Buffer.from(key, 'utf8')),
      headerValue: (value?: string) => (value === undefined ? undefined : Buffer.from(value, 'utf8')),
    },
  });
}

/** Sends records in batches with the raw producer, `concurrency` batches in flight; returns per-batch latencies. */
export async function rawSend(
  producer: Producer<string, Buffer, string, string>,
  records: OutgoingRecord[],
  batchSize: number,
  concurrency: number,
): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const loop = async () => {
    while (next < records.length) {
      const batch = records.slice(next, next + batchSize);
      next += batch.length;
      const t0 = performance.now();
      await producer.send({ messages: batch.map((r) => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })) });
      const ms = performance.now() - t0;
      for (let i = 0; i < batch.length; i++) latencies.push(ms);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return latencies;
}

/** Runs `count` tasks with at most `workers` at once. */
export async function pool<T>(count: number, workers: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(workers, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}
