import assert from 'node:assert/strict';
import type pg from 'pg';
import { KafkaPublisher } from '../../src/adapters/kafka/kafka-publisher.ts';
import type { OutgoingRecord } from '../../src/core/envelope.ts';
import { BROKERS, zlRecord } from './consumer-fixtures.ts';

export interface Workload {
  topic: string;
  messages: number;
  keys: number;
  /** Exact copies of earlier records (same id and bytes) injected on the topic, each after its original. */
  duplicates: number;
  /** Records per publish call; a pause of `pauseMs` follows each, so consumers work while we publish. */
  chunk?: number;
  pauseMs?: number;
  random: () => number;
}

/**
 * Publishes `messages` 'credit' records over `keys` keys, interleaved, with payload n = the key's own
 * counter (and the same producer sequence), plus the injected duplicates.
 */
export async function publishWorkload(w: Workload): Promise<void> {
  const publisher = new KafkaPublisher({ brokers: BROKERS });
  const chunk = w.chunk ?? 1_000;
  const sent: OutgoingRecord[] = [];
  const perKey = new Map<string, number>();
  let duplicates = 0;
  try {
    for (let i = 0; i < w.messages; i += chunk) {
      const batch: OutgoingRecord[] = [];
      for (let j = i; j < Math.min(w.messages, i + chunk); j++) {
        const key = `key-${j % w.keys}`;
        const n = (perKey.get(key) ?? 0) + 1;
        perKey.set(key, n);
        batch.push(zlRecord({ topic: w.topic, key, type: 'credit', payload: { n }, seq: n, producerId: 'workload' }));
      }
      sent.push(...batch);
      const due = Math.round((w.duplicates * Math.min(w.messages, i + chunk)) / w.messages) - duplicates;
      for (let d = 0; d < due; d++) batch.push(sent[Math.floor(w.random() * sent.length)] as OutgoingRecord);
      duplicates += due;
      for (const outcome of await publisher.publish(batch)) assert.ok(outcome.ok, 'publish');
      if (w.pauseMs) await new Promise((r) => setTimeout(r, w.pauseMs));
    }
  } finally {
    await publisher.close();
  }
}

export async function effectCount(pool: pg.Pool, schema: string): Promise<number> {
  return (await pool.query(`select count(distinct message_id)::int as n from "${schema}".effect`)).rows[0].n;
}

/** Each message's effect exactly once, each key's effects in publish order, no dead letters. */
export async function assertExactlyOnceInOrder(pool: pg.Pool, schema: string, messages: number, keys: number): Promise<void> {
  const { rows: totals } = await pool.query(
    `select count(*)::int as effects, count(distinct message_id)::int as messages from "${schema}".effect`,
  );
  assert.deepEqual(totals[0], { effects: messages, messages }, 'each message applied exactly once');
  const { rows } = await pool.query(`select msg_key, array_agg(n order by id) as ns from "${schema}".effect group by msg_key`);
  assert.equal(rows.length, keys);
  for (const { msg_key, ns } of rows) {
    const inOrder = (ns as number[]).every((n, i) => n === i + 1);
    assert.ok(inOrder, `key ${msg_key}: effects in publish order (got ${(ns as number[]).slice(0, 20).join(',')}...)`);
  }
  const { rows: dead } = await pool.query(`select count(*)::int as n from "${schema}".dead_letter`);
  assert.equal(dead[0].n, 0, 'nothing dead-lettered');
}

export { freePort } from '../../infra/services/port-open.ts';
