/**
 * One scale-bench instance in a process of its own: a zeroloss consumer or a polling relay with its own
 * pg pool and Kafka client, driven by its parent (bench/scale.ts) over IPC. It reports when it is ready
 * (consumer: joined, and each assignment it gets), starts reading or relaying on 'go', and stops on 'stop'.
 * Throughput is not measured here: the parent reads it from the database.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { KafkaPublisher } from '../src/adapters/kafka/kafka-publisher.ts';
import { KafkaSubscriber } from '../src/adapters/kafka/kafka-subscriber.ts';
import { PostgresOutboxStore } from '../src/adapters/postgres/postgres-outbox-store.ts';
import { pgDatabase } from '../src/adapters/postgres/pg-database.ts';
import { Relay } from '../src/outbox/relay.ts';
import type { RelaySource } from '../src/ports/outbox-store.ts';
import type { Database } from '../src/ports/sql-executor.ts';
import { testConsumer } from '../test/helpers/test-consumer.ts';
import { GatedSubscriber } from './lib/gated-subscriber.ts';

export interface ScaleWorkerConfig {
  role: 'consumer' | 'relay';
  index: number;
  pgUrl: string;
  brokers: string[];
  schema: string;
  poolSize: number;
  /** Consumer: its group and topic, lanes (keys in progress at once) and the handler's simulated I/O wait. */
  groupId?: string;
  topic?: string;
  concurrency?: number;
  ioMs?: number;
  /** Relay: rows per claim and claim loops. */
  batchSize?: number;
  relayConcurrency?: number;
}

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'assigned'; partitions: number }
  | { type: 'revoked' }
  | { type: 'error'; message: string }
  | { type: 'stats'; transactions: number; messages: number; cpuMs: number }
  | { type: 'stopped' };

const send = (m: WorkerMessage) => process.send?.(m);

/** Statements by their first words, counted when ZL_SCALE_METRICS asks for a breakdown of what a run cost. */
const statementCounts = new Map<string, number>();
function countingStatements(inner: Database): Database {
  const count = (sql: string) => {
    const head = sql.replace(/\s+/g, ' ').trim().slice(0, 60);
    statementCounts.set(head, (statementCounts.get(head) ?? 0) + 1);
  };
  return {
    query: (sql, params) => {
      count(sql);
      return inner.query(sql, params);
    },
    transaction: (fn) => {
      count('BEGIN');
      return inner.transaction((tx) =>
        fn({
          query: (sql, params) => {
            count(sql);
            return tx.query(sql, params);
          },
        }),
      );
    },
    listen: (channel, onNotify) => inner.listen(channel, onNotify),
    close: () => inner.close(),
  };
}

/** A relay instance's claims (those that came back empty apart), markSent calls and cheap checks, for ZL_SCALE_METRICS. */
const relayCalls = { claims: 0, claimMs: 0, rows: 0, empty: 0, emptyMs: 0, markSent: 0, markSentMs: 0, anyDue: 0 };
function countingSource(inner: RelaySource): RelaySource {
  return new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const call = (value as (...args: unknown[]) => unknown).bind(target);
      if (prop === 'claim')
        return async (...args: unknown[]) => {
          const t0 = performance.now();
          const rows = (await call(...args)) as unknown[];
          const ms = performance.now() - t0;
          if (rows.length === 0) {
            relayCalls.empty++;
            relayCalls.emptyMs += ms;
          } else {
            relayCalls.claims++;
            relayCalls.claimMs += ms;
            relayCalls.rows += rows.length;
          }
          return rows;
        };
      if (prop === 'markSent')
        return async (...args: unknown[]) => {
          const t0 = performance.now();
          await call(...args);
          relayCalls.markSent++;
          relayCalls.markSentMs += performance.now() - t0;
        };
      if (prop === 'anyDue')
        return (...args: unknown[]) => {
          relayCalls.anyDue++;
          return call(...args);
        };
      return call;
    },
  });
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ScaleWorkerConfig;
  const pool = new pg.Pool({ connectionString: config.pgUrl, max: config.poolSize });
  pool.on('error', () => {});
  const db = countingStatements(pgDatabase({ pool }));
  let go: () => void = () => {};
  let stop: () => Promise<void> = async () => {};
  let errors = 0;
  const report = (e: Error) => {
    // The first few only: a broken run shows its cause without flooding the parent.
    if (++errors <= 3) send({ type: 'error', message: e.message });
  };
  if (config.role === 'consumer') {
    const subscriber = new GatedSubscriber(
      new KafkaSubscriber({ brokers: config.brokers, clientId: `zl-bench-scale-${config.index}`, maxWaitMs: 100 }),
    );
    const consumer = testConsumer({
      subscriber,
      db,
      schema: config.schema,
      config: { groupId: config.groupId as string, topics: [config.topic as string], concurrency: config.concurrency ?? 64 },
    });
    const table = `"${config.schema}".effect`;
    const ioMs = config.ioMs ?? 0;
    consumer.handle<{ amount: number }>('order.placed', async (m, ctx) => {
      // A call to another service: the handler waits without using the CPU.
      if (ioMs > 0) await sleep(ioMs);
      // clock_timestamp, not now(): group-committed effects share a transaction but not a moment.
      await ctx.tx.query(`insert into ${table} (message_id, msg_key, amount, applied_at) values ($1, $2, $3, clock_timestamp())`, [
        m.id,
        m.key,
        m.payload.amount,
      ]);
    });
    consumer.on('assigned', (p) => send({ type: 'assigned', partitions: p.length }));
    consumer.on('revoked', () => send({ type: 'revoked' }));
    consumer.on('error', report);
    await consumer.start();
    go = () => subscriber.open();
    stop = async () => {
      // Group commit as it ran: how many effect transactions the messages took.
      const m = await consumer.metrics();
      // Every consumer metric of the run, to stderr, when asked (diagnosing what bounds a configuration).
      if (process.env.ZL_SCALE_METRICS) {
        process.stderr.write(`instance ${config.index} metrics ${JSON.stringify(m)}\n`);
        process.stderr.write(`instance ${config.index} statements ${JSON.stringify(Object.fromEntries(statementCounts))}\n`);
      }
      send({
        type: 'stats',
        transactions: m.zeroloss_consumer_transaction_messages_count ?? 0,
        messages: m.zeroloss_consumer_transaction_messages_sum ?? 0,
        cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      });
      await consumer.stop();
    };
  } else {
    const publisher = new KafkaPublisher({ brokers: config.brokers, clientId: `zl-bench-scale-relay-${config.index}` });
    const store = new PostgresOutboxStore(db, { schema: config.schema });
    const relay = new Relay({
      // Counted only when asked: the measured runs time the store as users run it.
      sources: process.env.ZL_SCALE_METRICS ? countingSource(store) : store,
      publisher,
      db,
      config: { batchSize: config.batchSize ?? 500, concurrency: config.relayConcurrency ?? 2 },
    });
    relay.on('error', report);
    go = () => void relay.start().catch(report);
    stop = async () => {
      await relay.stop();
      await publisher.close();
      if (process.env.ZL_SCALE_METRICS) {
        const round = (n: number) => Math.round(n);
        const c = relayCalls;
        process.stderr.write(
          `instance ${config.index} relay: ${c.claims} claims (${c.rows} rows, ${round(c.claimMs)} ms), ${c.empty} empty (${round(c.emptyMs)} ms), ${c.markSent} markSent (${round(c.markSentMs)} ms), ${c.anyDue} due checks, CPU ${round((process.cpuUsage().user + process.cpuUsage().system) / 1000)} ms\n`,
        );
        process.stderr.write(`instance ${config.index} statements ${JSON.stringify(Object.fromEntries(statementCounts))}\n`);
      }
    };
  }
  process.on('message', (m: { type: string }) => {
    if (m.type === 'go') go();
    if (m.type === 'stop') {
      void stop()
        .catch(report)
        .then(() => db.close().catch(() => {}))
        .then(() => pool.end().catch(() => {}))
        .finally(() => {
          send({ type: 'stopped' });
          process.disconnect?.();
          process.exit(0);
        });
    }
  });
  send({ type: 'ready' });
}

main().catch((error: unknown) => {
  send({ type: 'error', message: (error as Error)?.stack ?? String(error) });
  process.exit(1);
});
