/**
 * In-process crash points between the broker's ack and the relay recording it (P5 with a live relay).
 *
 * Each crash point is a fresh relay instance whose publisher hands the batch to the real broker, lets the
 * broker acknowledge it, and then never returns: the round is abandoned before `markSent`, exactly as if
 * the process died there, and its rows keep a lease that ends after `leaseMs`. The next crash point's relay
 * (a new instance id, as after a restart) claims those rows once the lease is over. The fault lives in this
 * test-only wrapper around the Publisher port, not in the relay.
 *
 * Every publish, dying or healthy, goes through `counting`, which counts records whose message id the
 * broker had already acknowledged: the resends the broker check must avoid.
 */
import { Registry } from 'prom-client';
import { HEADER, type OutgoingRecord } from '../../src/core/envelope.ts';
import { Relay, type RelayConfig } from '../../src/outbox/relay.ts';
import type pg from 'pg';
import { PostgresOutboxStore } from '../../src/adapters/postgres/postgres-outbox-store.ts';
import type { BrokerInspector, BrokerRecord } from '../../src/ports/broker-inspector.ts';
import type { RelaySource } from '../../src/ports/outbox-store.ts';
import type { Database } from '../../src/ports/sql-executor.ts';
import type { Publisher } from '../../src/ports/transport.ts';
import { inTransaction } from './pg.ts';
import { testOutbox } from './test-outbox.ts';

export interface CrashTally {
  /** Message ids the broker acknowledged, from any publish. */
  acked: Set<string>;
  /** Records handed to the broker again although it had acknowledged their message id before. */
  resendsOfAcked: number;
  /** Crash points reached (rounds abandoned after the broker's ack). */
  crashes: number;
}

/** Wraps a publisher so every publish is tallied; `dieAfterAck` makes it abandon the round after an ack. */
export function countingPublisher(inner: Publisher, tally: CrashTally, onAck?: () => void): Publisher {
  return {
    async publish(records: OutgoingRecord[]) {
      for (const r of records) if (tally.acked.has(r.headers[HEADER.id] ?? '')) tally.resendsOfAcked++;
      const outcomes = await inner.publish(records);
      outcomes.forEach((o, i) => {
        if (o.ok) tally.acked.add(records[i]?.headers[HEADER.id] ?? '');
      });
      if (onAck && outcomes.some((o) => o.ok)) {
        tally.crashes++;
        onAck();
        // The process "died" here: the relay never learns the outcome, so it records nothing.
        return new Promise<never>(() => {});
      }
      return outcomes;
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Runs `crashes` crash points one after another, then one healthy relay that drains the rest. Returns the
 * tally; `inspector` undefined runs the relay without the broker check (today's resend).
 */
export async function runCrashPoints(options: {
  source: RelaySource;
  publisher: Publisher;
  inspector: BrokerInspector | undefined;
  crashes: number;
  config: RelayConfig;
}): Promise<CrashTally & { drained: number; check: { rounds: number; seconds: number; found: number } }> {
  const tally: CrashTally = { acked: new Set(), resendsOfAcked: 0, crashes: 0 };
  // One registry for every instance: the broker check's own histogram gives its count and total time.
  const registry = new Registry();
  for (let i = 0; i < options.crashes; i++) {
    let acked!: () => void;
    const crashed = new Promise<'crashed'>((resolve) => {
      acked = () => resolve('crashed');
    });
    const relay = new Relay({
      sources: options.source,
      publisher: countingPublisher(options.publisher, tally, acked),
      inspector: options.inspector,
      registry,
      config: { ...options.config, instanceId: `crash-${i}` },
    });
    // drain() settles only when nothing was left to send; otherwise its round hangs at the crash point.
    const outcome = await Promise.race([crashed, relay.drain().then(() => 'drained' as const)]);
    if (outcome === 'drained') break;
  }
  const healthy = new Relay({
    sources: options.source,
    publisher: countingPublisher(options.publisher, tally),
    inspector: options.inspector,
    registry,
    config: { ...options.config, instanceId: 'healthy', leaseMs: 60_000 },
  });
  const drained = await healthy.drain();
  const metrics = await registry.getMetricsAsJSON();
  const value = (metric: string, name = metric) =>
    ((metrics.find((m) => m.name === metric)?.values ?? []) as Array<{ value: number; metricName?: string }>)
      .filter((v) => (v.metricName ?? metric) === name)
      .reduce((n, v) => n + v.value, 0);
  const check = {
    rounds: value('zeroloss_relay_broker_check_seconds', 'zeroloss_relay_broker_check_seconds_count'),
    seconds: value('zeroloss_relay_broker_check_seconds', 'zeroloss_relay_broker_check_seconds_sum'),
    found: value('zeroloss_relay_found_on_broker_total'),
  };
  return { ...tally, drained, check };
}

export interface CrashScenarioSummary {
  crashes: number;
  acked: number;
  /** Records handed to the broker although it had acknowledged that message id before. */
  resendsOfAcked: number;
  lost: number;
  /** Message ids with more than one copy on the topic. */
  duplicated: number;
  /** Keys whose sequence numbers step back in broker order. */
  outOfOrder: number;
  sentRows: number;
  /** Rows recorded sent without the broker's position. */
  noPosition: number;
  total: number;
  elapsedMs: number;
  /** Broker checks run, rows they found, and their mean time. */
  checks: number;
  foundOnBroker: number;
  checkMsMean: number;
}

/**
 * Enqueues `crashes * batchSize + 3` messages over 7 keys, runs the crash points and a healthy drain, and
 * reads the topic back: copies per message id, per-key sequence order, and what the outbox recorded.
 */
export async function crashScenario(options: {
  pool: pg.Pool;
  db: Database;
  schema: string;
  topic: string;
  publisher: Publisher;
  inspector: BrokerInspector;
  /** Given to the relay; undefined runs it without the broker check. */
  relayInspector?: BrokerInspector | undefined;
  crashes: number;
  batchSize: number;
  slackMs?: number;
}): Promise<CrashScenarioSummary> {
  const outbox = testOutbox({ schema: options.schema });
  const keys = 7;
  const total = options.crashes * options.batchSize + 3;
  const ids: string[] = [];
  for (let i = 0; i < total; i += 50) {
    await inTransaction(options.pool, async (tx) => {
      for (let j = i; j < Math.min(total, i + 50); j++) {
        ids.push((await outbox.enqueue(tx, { topic: options.topic, key: `k${j % keys}`, type: 't', payload: { j } })).id);
      }
    });
  }
  const started = performance.now();
  const result = await runCrashPoints({
    source: new PostgresOutboxStore(options.db, { schema: options.schema }),
    publisher: options.publisher,
    inspector: 'relayInspector' in options ? options.relayInspector : options.inspector,
    crashes: options.crashes,
    // A lease that ends at once: the next crash point's relay claims the rows right away.
    config: { batchSize: options.batchSize, leaseMs: 1, brokerCheckSlackMs: options.slackMs ?? 200 },
  });
  const elapsedMs = performance.now() - started;

  const { copies, seqs } = await brokerCopies(options.inspector, options.topic);
  const { rows } = await options.pool.query(
    `select count(*) filter (where state = 1)::int as sent, count(*) filter (where state = 1 and sent_offset is null)::int as no_position
     from "${options.schema}".outbox where topic = $1`,
    [options.topic],
  );
  return {
    crashes: result.crashes,
    acked: result.acked.size,
    resendsOfAcked: result.resendsOfAcked,
    lost: ids.filter((id) => !copies.has(id)).length,
    duplicated: [...copies.values()].filter((n) => n > 1).length,
    outOfOrder: [...seqs.values()].filter((s) => s.some((v, i) => i > 0 && v <= (s[i - 1] as number))).length,
    sentRows: rows[0].sent,
    noPosition: rows[0].no_position,
    total,
    elapsedMs: Math.round(elapsedMs),
    checks: result.check.rounds,
    foundOnBroker: result.check.found,
    checkMsMean: Math.round((result.check.seconds * 10_000) / Math.max(1, result.check.rounds)) / 10,
  };
}

/**
 * What a topic holds, read through the inspector: copies per message id, and per key the sequence numbers
 * of first copies in broker order (1, 2, 3… with no step back when key order held).
 */
export async function brokerCopies(
  inspector: BrokerInspector,
  topic: string,
): Promise<{ records: number; copies: Map<string, number>; seqs: Map<string, number[]> }> {
  const records: BrokerRecord[] = [];
  const marks = (await inspector.watermarks(topic)) ?? [];
  for await (const r of inspector.read(marks.map((m) => ({ topic, partition: m.partition, from: m.low, to: m.high })))) records.push(r);
  const copies = new Map<string, number>();
  for (const r of records) copies.set(r.headers[HEADER.id] ?? '', (copies.get(r.headers[HEADER.id] ?? '') ?? 0) + 1);
  const seqs = new Map<string, number[]>();
  const seen = new Set<string>();
  for (const r of records.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset))) {
    const id = r.headers[HEADER.id] ?? '';
    if (seen.has(id)) continue;
    seen.add(id);
    const keySeqs = seqs.get(r.key);
    if (keySeqs) keySeqs.push(Number(r.headers['zl-seq']));
    else seqs.set(r.key, [Number(r.headers['zl-seq'])]);
  }
  return { records: records.length, copies, seqs };
}
