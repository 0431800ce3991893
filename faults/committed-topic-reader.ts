import { randomBytes } from 'node:crypto';
import { Consumer, Producer, ProduceAcks } from '@platformatic/kafka';
import type { TopicRecord } from './topic-reader.ts';

/** Header of the end marker readCommittedTopic appends; no zeroloss record carries it. */
const END_MARKER = 'x-zl-fx-end';

/**
 * Every committed record of a topic written in Kafka transactions, as a read_committed consumer sees it:
 * records of aborted transactions left out, each committed one once per time it was committed.
 *
 * The high watermark is no end for such a topic: its last offsets are commit markers, which no consumer is
 * ever handed, so waiting for the record at "end - 1" would wait forever. Instead the reader first appends
 * an end marker to each partition (plain, non-transactional, acks=all) and reads from the beginning with
 * its own group (nothing committed) until it meets every marker. A read_committed fetch stops at the last
 * stable offset, so the marker arrives only once every transaction open before it has committed or
 * aborted: what comes before it is final. Markers stay in the (per-scenario) topic and are never records.
 */
export async function readCommittedTopic(
  topic: string,
  partitions: number,
  brokers: string[],
  timeoutMs = 120_000,
): Promise<TopicRecord[]> {
  const marker = randomBytes(6).toString('hex');
  const producer = new Producer({ clientId: 'zl-fx-committed-reader', bootstrapBrokers: brokers, acks: ProduceAcks.ALL, retries: 5 });
  try {
    await producer.send({
      messages: Array.from({ length: partitions }, (_, partition) => ({
        topic,
        partition,
        key: Buffer.from(END_MARKER),
        value: Buffer.alloc(0),
        headers: new Map([[Buffer.from(END_MARKER), Buffer.from(marker)]]),
      })),
    });
  } finally {
    await producer.close().catch(() => {});
  }

  const consumer = new Consumer({
    groupId: `zl-fx-committed-reader-${randomBytes(4).toString('hex')}`,
    clientId: 'zl-fx-committed-reader',
    bootstrapBrokers: brokers,
    maxWaitTime: 200,
    autocommit: false,
    isolationLevel: 1,
    timeout: 10_000,
  });
  try {
    const records: TopicRecord[] = [];
    const remaining = new Set(Array.from({ length: partitions }, (_, p) => p));
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 200, isolationLevel: 1 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `reading ${topic} (read_committed): partitions ${[...remaining].join(',')} not read to their end marker in ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
        stream.on('data', (m) => {
          if (!remaining.has(m.partition)) return;
          const headers = new Map<string, string>();
          for (const [k, v] of m.headers) headers.set(k.toString(), v?.toString() ?? '');
          if (headers.has(END_MARKER)) {
            if (headers.get(END_MARKER) !== marker) return;
            remaining.delete(m.partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
            return;
          }
          records.push({
            partition: m.partition,
            offset: m.offset,
            key: m.key?.toString() ?? '',
            id: headers.get('zl-id') ?? '',
            seq: Number(headers.get('zl-seq') ?? Number.NaN),
          });
        });
        stream.on('error', (error: Error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } finally {
      await stream.close().catch(() => {});
    }
    return records;
  } finally {
    await consumer.close(true).catch(() => {});
  }
}
