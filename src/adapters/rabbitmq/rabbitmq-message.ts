import type { ConsumeMessage } from 'amqplib';
import type { IncomingRecord } from '../../core/envelope.ts';

/** The record key travels in this header (an AMQP routing key is the partition queue's name). */
export const KEY_HEADER = 'x-zl-key';
/** Set by RabbitMQ on every message read from a stream: its offset there. */
export const OFFSET_HEADER = 'x-stream-offset';

/**
 * A stream message as a record. The transport's own headers are taken off; other header values come
 * back as strings, as they went in (a value some other publisher sent as a number is stringified, so
 * the consumer can still read or dead-letter it).
 */
export function toRecord(topic: string, partition: number, message: ConsumeMessage): IncomingRecord | undefined {
  const raw = message.properties.headers ?? {};
  const offset = raw[OFFSET_HEADER];
  if (typeof offset !== 'number' && typeof offset !== 'bigint') return undefined;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === KEY_HEADER || name === OFFSET_HEADER) continue;
    headers[name] = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  const key = raw[KEY_HEADER];
  return {
    topic,
    partition,
    offset: BigInt(offset),
    key: typeof key === 'string' ? key : Buffer.isBuffer(key) ? key.toString('utf8') : '',
    value: message.content,
    headers,
    ...(typeof message.properties.timestamp === 'number' ? { timestamp: message.properties.timestamp } : {}),
  };
}
