import { randomBytes } from 'node:crypto';
import { Consumer } from '@platformatic/kafka';
import { createAdmin, ensureTopic } from '../../src/adapters/kafka/kafka-admin.ts';
import { KafkaInspector } from '../../src/adapters/kafka/kafka-inspector.ts';

export const KAFKA_BROKERS = (process.env.ZL_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export function uniqueTopic(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function createTopic(topic: string, partitions: number, configs?: Record<string, string>, brokers = KAFKA_BROKERS) {
  const admin = createAdmin(brokers);
  try {
    return await ensureTopic(admin, { topic, partitions, configs });
  } finally {
    await admin.close();
  }
}

export interface ReadRecord {
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  partition: number;
  offset: bigint;
}

/**
 * Reads a topic from the beginning with an independent consumer (its own group, nothing committed)
 * until `done(records)` holds or the deadline passes; returns everything read.
 */
export async function readTopic(
  topic: string,
  options: {
    done: (records: ReadRecord[]) => boolean;
    timeoutMs?: number;
    brokers?: string[];
    /** read_committed by default, like any downstream consumer of transactional writes. */
    isolation?: 'read_committed' | 'read_uncommitted';
  },
): Promise<ReadRecord[]> {
  const consumer = new Consumer({
    groupId: `zl-reader-${randomBytes(4).toString('hex')}`,
    clientId: 'zl-test-reader',
    bootstrapBrokers: options.brokers ?? KAFKA_BROKERS,
    maxWaitTime: 200,
    autocommit: false,
    isolationLevel: options.isolation === 'read_uncommitted' ? 0 : 1,
  });
  const records: ReadRecord[] = [];
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  try {
    if (options.done(records)) return records;
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (Date.now() > deadline) {
          clearInterval(timer);
          resolve();
        }
      }, 100);
      stream.on('data', (m) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of m.headers) headers[k.toString()] = v.toString();
        records.push({
          key: m.key?.toString() ?? '',
          value: m.value ?? Buffer.alloc(0),
          headers,
          partition: m.partition,
          offset: m.offset,
        });
        if (options.done(records)) {
          clearInterval(timer);
          resolve();
        }
      });
      stream.on('error', (e) => {
        clearInterval(timer);
        reject(e);
      });
    });
    return records;
  } finally {
    await stream.close().catch(() => {});
    await consumer.close(true).catch(() => {});
  }
}

/** Reads a whole topic: every record below each partition's end offset at the time of the call. */
export async function readAll(topic: string, brokers = KAFKA_BROKERS): Promise<ReadRecord[]> {
  const inspector = new KafkaInspector({ brokers });
  let total = 0n;
  try {
    for (const mark of (await inspector.watermarks(topic)) ?? []) total += mark.high - mark.low;
  } finally {
    await inspector.close();
  }
  return readTopic(topic, { brokers, done: (rs) => BigInt(rs.length) >= total });
}
