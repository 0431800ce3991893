import { randomBytes } from 'node:crypto';
import { Admin } from '@platformatic/kafka';
import { KAFKA_BROKERS, type ReadRecord, readTopic as readKafkaTopic } from './kafka.ts';
import { envelopeHeaders, type OutgoingRecord } from '../../src/core/envelope.ts';
import type { SqlExecutor } from '../../src/ports/sql-executor.ts';

/** Consumer-test helpers: topics created with the Admin client, zeroloss-format records, an effect table. */
export const BROKERS = KAFKA_BROKERS;

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Creates the topics (auto-creation is off on the test broker) and waits until they have leaders. */
export async function createTopics(topics: string[], partitions: number, brokers = BROKERS): Promise<void> {
  const admin = new Admin({ clientId: 'zl-consumer-tests', bootstrapBrokers: brokers, timeout: 10_000 });
  try {
    await admin.createTopics({ topics, partitions, replicas: 1 });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const metadata = await admin.metadata({ topics, forceUpdate: true }).catch(() => undefined);
      const ready = metadata && topics.every((t) => metadata.topics.get(t)?.partitions.every((p) => p.leader >= 0));
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leaders after 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.close();
  }
}

/** Main topic plus its dead-letter topic and `retries` retry topics. */
export function topicFamily(topic: string, retries = 0): string[] {
  return [topic, `${topic}.dlq`, ...Array.from({ length: retries }, (_, i) => `${topic}.retry.${i + 1}`)];
}

export interface RecordInput {
  topic: string;
  key: string;
  type: string;
  payload: unknown;
  id?: string;
  version?: number;
  producerId?: string;
  seq?: number;
  createdAt?: string;
}

let counter = 0;

/** A record as the relay would send it: JSON payload bytes, envelope in headers. */
export function zlRecord(input: RecordInput): OutgoingRecord {
  const id = input.id ?? `${Date.now()}${String(++counter).padStart(6, '0')}`;
  return {
    topic: input.topic,
    key: input.key,
    value: Buffer.from(JSON.stringify(input.payload), 'utf8'),
    headers: envelopeHeaders(
      {
        id,
        traceId: id,
        type: input.type,
        version: input.version ?? 1,
        key: input.key,
        producerId: input.producerId ?? 'test-producer',
        seq: input.seq ?? 0,
        createdAt: input.createdAt ?? new Date().toISOString(),
        headers: {},
      },
      'application/json',
    ),
  };
}

/** The business table the test handlers write their effect to. */
export async function createEffectTable(db: SqlExecutor, schema: string): Promise<void> {
  await db.query(`create table "${schema}".effect (
    id bigserial primary key,
    message_id text not null,
    msg_key text not null,
    n integer not null,
    type text not null,
    applied_at timestamptz not null default clock_timestamp()
  )`);
}

export async function insertEffect(
  tx: SqlExecutor,
  schema: string,
  m: { id: string; key: string; n: number; type: string },
): Promise<void> {
  await tx.query(`insert into "${schema}".effect (message_id, msg_key, n, type) values ($1, $2, $3, $4)`, [m.id, m.key, m.n, m.type]);
}

export type { ReadRecord } from './kafka.ts';

/**
 * Reads a topic from the beginning (own group, nothing committed) until `count` records arrived (or
 * `until` holds for one) or the deadline. read_committed unless `isolation` says otherwise.
 */
export function readTopic(
  topic: string,
  count: number,
  timeoutMs = 30_000,
  options: { isolation?: 'read_committed' | 'read_uncommitted'; until?: (r: ReadRecord) => boolean } = {},
): Promise<ReadRecord[]> {
  const until = options.until;
  return readKafkaTopic(topic, {
    done: (records) =>
      records.length >= count || (until !== undefined && records.length > 0 && until(records[records.length - 1] as ReadRecord)),
    timeoutMs,
    isolation: options.isolation,
  });
}
