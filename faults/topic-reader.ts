import { randomBytes } from 'node:crypto';
import { Consumer } from '@platformatic/kafka';
import type { ConsumeMessage } from 'amqplib';
import pg from 'pg';
import { amqp } from '../src/adapters/rabbitmq/rabbitmq-driver.ts';
import { toRecord } from '../src/adapters/rabbitmq/rabbitmq-message.ts';
import { rabbitNames } from '../src/adapters/rabbitmq/rabbitmq-names.ts';
import { probePartitions } from '../src/adapters/rabbitmq/rabbitmq-topology.ts';
import { RedisStreamsInspector } from '../src/adapters/redis-streams/redis-streams-inspector.ts';
import type { BrokerRecord, ReadStats } from '../src/ports/broker-inspector.ts';

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

const fromHeaders = (r: Pick<BrokerRecord, 'partition' | 'offset' | 'key' | 'headers'>): TopicRecord => ({
  partition: r.partition,
  offset: r.offset,
  key: r.key,
  id: r.headers['zl-id'] ?? '',
  seq: Number(r.headers['zl-seq'] ?? Number.NaN),
});

/**
 * Every entry of the topic's partition streams on Redis, from the first to the last at the time of the
 * read, with XRANGE (no consumer group, so nothing is taken from one). A range it cannot finish is an
 * error, not a shorter topic.
 */
export async function readWholeRedisTopic(topic: string, url: string): Promise<TopicRecord[]> {
  const inspector = new RedisStreamsInspector({ url });
  try {
    const marks = (await inspector.watermarks(topic)) ?? [];
    const stats: ReadStats = { records: 0, incomplete: [] };
    const records: TopicRecord[] = [];
    for await (const r of inspector.read(
      marks.map((m) => ({ topic, partition: m.partition, from: m.low, to: m.high })),
      stats,
    )) {
      records.push(fromHeaders(r));
    }
    if (stats.incomplete.length > 0)
      throw new Error(`reading ${topic}: ${JSON.stringify(stats.incomplete, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    return records;
  } finally {
    await inspector.close();
  }
}

/** Header of the end marker readWholeRabbitTopic appends; no zeroloss record carries it. */
const END_MARKER = 'x-zl-fx-end';

/**
 * Every message of the topic's partition streams on RabbitMQ. A stream has no watermark to ask for over
 * AMQP, so the reader first appends an end marker to each partition (confirmed), then reads each stream
 * from its first offset with a consumer of its own (stream reads take nothing away) until it meets its
 * marker: everything published before the read started comes before it. Run it once relays and consumers
 * have stopped; the markers stay in the (throwaway) streams and are never records.
 */
export async function readWholeRabbitTopic(topic: string, url: string, timeoutMs = 120_000): Promise<TopicRecord[]> {
  const conn = await amqp.connect(url);
  conn.on('error', () => {});
  try {
    const partitions = await probePartitions(conn, topic);
    const confirm = await conn.createConfirmChannel();
    const marker = randomBytes(6).toString('hex');
    for (let p = 0; p < partitions; p++) {
      confirm.publish('', rabbitNames.partition(topic, p), Buffer.alloc(0), { persistent: true, headers: { [END_MARKER]: marker } });
    }
    await confirm.waitForConfirms();
    await confirm.close();
    const records: TopicRecord[] = [];
    const ch = await conn.createChannel();
    await ch.prefetch(1_000);
    const remaining = new Set(Array.from({ length: partitions }, (_, p) => p));
    if (remaining.size === 0) return records;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic}: partitions ${[...remaining].join(',')} not read to their end marker in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const done = (p: number) => {
        remaining.delete(p);
        if (remaining.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (let p = 0; p < partitions; p++) {
        const onMessage = (message: ConsumeMessage | null) => {
          if (message === null || !remaining.has(p)) return;
          ch.ack(message);
          if (message.properties.headers?.[END_MARKER] === marker) return done(p);
          const record = toRecord(topic, p, message);
          if (record) records.push(fromHeaders({ ...record, headers: record.headers }));
        };
        ch.consume(rabbitNames.partition(topic, p), onMessage, { noAck: false, arguments: { 'x-stream-offset': 'first' } }).catch(
          (error: Error) => {
            clearTimeout(timer);
            reject(error);
          },
        );
      }
    });
    return records;
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * Every record of the topic in the table log (`--transport table-log`), read with the suite's own SQL from
 * the log's table (migration 3's log_record), not through the transport's code: the log table is the
 * transport, so this is the independent read of it. Partition by partition, in offset order.
 */
export async function readWholeTableLog(topic: string, schema: string, url: string): Promise<TopicRecord[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await tableLogRecords((sql, params) => client.query(sql, params), schema, topic);
  } finally {
    await client.end().catch(() => {});
  }
}

type LogRow = { partition: number; log_offset: string; msg_key: string; id: string | null; seq: string | null };

/** One topic of a table log (migration 3's log_record) through any SQL client: pg here, PGlite for the embedded scenario. */
export async function tableLogRecords(
  query: (sql: string, params: unknown[]) => Promise<{ rows: LogRow[] }>,
  schema: string,
  topic: string,
): Promise<TopicRecord[]> {
  const { rows } = await query(
    `select partition, log_offset::text as log_offset, msg_key, headers->>'zl-id' as id, headers->>'zl-seq' as seq
       from "${schema}".log_record where topic = $1 order by partition, log_offset`,
    [topic],
  );
  return rows.map((r) => ({
    partition: r.partition,
    offset: BigInt(r.log_offset),
    key: r.msg_key,
    id: r.id ?? '',
    seq: Number(r.seq ?? Number.NaN),
  }));
}
