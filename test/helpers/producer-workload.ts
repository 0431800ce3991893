import type pg from 'pg';
import { businessTransaction, recordOutcome } from '../../faults/workload.ts';
import type { Outbox } from '../../src/outbox/outbox.ts';
import { prng } from './prng.ts';
import type { ReadRecord } from './kafka.ts';

export interface WorkloadResult {
  /** Ids whose transaction the client saw commit. */
  committed: Set<string>;
  /** Ids whose transaction was rolled back on purpose. */
  rolledBack: Set<string>;
  /** Ids whose commit outcome is unknown (the connection broke during commit). */
  unknown: Set<string>;
  failedTransactions: number;
}

/**
 * Concurrent business transactions, each enqueueing 1-3 keyed messages; about `rollbackRate` of them
 * roll back on purpose after enqueueing. Transactions that fail (database restarting) are retried with
 * fresh messages until `messages` have committed.
 */
export async function enqueueWorkload(options: {
  pool: pg.Pool;
  outbox: Outbox;
  topic: string;
  messages: number;
  keys: number;
  workers: number;
  rollbackRate: number;
  seed: number;
}): Promise<WorkloadResult> {
  const random = prng(options.seed);
  const result: WorkloadResult = { committed: new Set(), rolledBack: new Set(), unknown: new Set(), failedTransactions: 0 };
  let remaining = options.messages;
  const worker = async () => {
    while (remaining > 0) {
      const count = Math.min(remaining, 1 + Math.floor(random() * 3));
      remaining -= count;
      const rollback = random() < options.rollbackRate;
      const key = `key-${Math.floor(random() * options.keys)}`;
      const { outcome, ids } = await businessTransaction(options.pool, rollback, async (client, ids) => {
        for (let i = 0; i < count; i++) {
          const envelope = await options.outbox.enqueue(client, { topic: options.topic, key, type: 'test.event', payload: { key, i } });
          ids.push(envelope.id);
        }
      });
      recordOutcome(result, outcome, ids);
      if (outcome === 'rolledBack' || outcome === 'failedBeforeCommit') remaining += count;
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
  return result;
}

export interface TopicCheck {
  committed: number;
  onTopic: number;
  unique: number;
  duplicates: number;
  lost: string[];
  phantom: string[];
  orderViolations: number;
}

/**
 * Compares the outbox's committed rows (the database is the authority) with what the topic holds.
 * Order: per key, the first occurrences of messages must carry sequence numbers 1, 2, 3, ... with no
 * gap and no inversion; later occurrences are resends (duplicates), allowed and counted.
 */
export function checkTopic(outboxIds: Set<string>, rolledBack: Set<string>, records: ReadRecord[]): TopicCheck {
  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  let orderViolations = 0;
  const phantom: string[] = [];
  for (const r of records) {
    const id = r.headers['zl-id'] ?? '';
    if (seen.has(id)) continue;
    seen.add(id);
    if (rolledBack.has(id) || !outboxIds.has(id)) phantom.push(id);
    const seq = Number(r.headers['zl-seq']);
    const expected = (lastSeq.get(r.key) ?? 0) + 1;
    if (seq !== expected) orderViolations++;
    lastSeq.set(r.key, seq);
  }
  const lost = [...outboxIds].filter((id) => !seen.has(id));
  return {
    committed: outboxIds.size,
    onTopic: records.length,
    unique: seen.size,
    duplicates: records.length - seen.size,
    lost,
    phantom,
    orderViolations,
  };
}
