import { randomBytes } from 'node:crypto';
import { Consumer } from '@platformatic/kafka';

export interface TopicRecord {
  partition: number;
  offset: bigint;
  key: string;
  id: string;
  seq: number;
}

/**
 * Reads every record of `topic` from the beginning up to the high watermark each partition had when the
 * read started, with an independent consumer (its own group, nothing committed). Fails after `timeoutMs`
 * rather than returning a partial topic, which would read as loss.
 */
export async function readWholeTopic(topic: string, brokers: string[], timeoutMs = 120_000): Promise<TopicRecord[]> {
  const consumer = new Consumer({
    groupId: `zl-fx-reader-${randomBytes(4).toString('hex')}`,
    clientId: 'zl-fx-reader',
    bootstrapBrokers: brokers,
    maxWaitTime: 200,
    autocommit: false,
    timeout: 10_000,
  });
  try {
    const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const remaining = new Set<number>();
    ends.forEach((end, partition) => {
      if (end > 0n) remaining.add(partition);
    });
    const records: TopicRecord[] = [];
    if (remaining.size === 0) return records;
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 200 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`reading ${topic}: partitions ${[...remaining].join(',')} not read to their end in ${timeoutMs} ms`)),
          timeoutMs,
        );
        stream.on('data', (m) => {
          const end = ends[m.partition] ?? 0n;
          if (m.offset >= end) return;
          const headers = new Map<string, string>();
          for (const [k, v] of m.headers) headers.set(k.toString(), v?.toString() ?? '');
          records.push({
            partition: m.partition,
            offset: m.offset,
            key: m.key?.toString() ?? '',
            id: headers.get('zl-id') ?? '',
            seq: Number(headers.get('zl-seq') ?? Number.NaN),
          });
          if (m.offset === end - 1n) {
            remaining.delete(m.partition);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          }
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
