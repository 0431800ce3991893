import type { OutgoingRecord } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';

/** What a transport refuses beyond the common checks, and how it tells a user to create a missing topic. */
export interface OutgoingRecordRules {
  /** Runs after the key is known to be a string. */
  checkKey?: (key: string) => ZerolossError | undefined;
  /** Runs after the value is known to be a string, before its bytes are counted. */
  checkHeader?: (name: string, value: string) => ZerolossError | undefined;
  /** Ends "topic <t> does not exist …", e.g. "on Redis: create it with RedisStreamsAdmin.createTopic". */
  missingTopic: string;
}

/**
 * The publisher-side check of one record on a partitioned transport, before anything is sent: shape,
 * size (value + key + headers, like Kafka's max.message.bytes) and a known topic. A problem comes back
 * as the record's own error, never thrown, so one bad record fails alone. A missing topic is the Kafka
 * publisher's answer, a retryable ZL_TOPIC_UNAVAILABLE: the relay backs those records off uncharged and
 * raises its topic alarm until someone creates the topic.
 */
export function checkOutgoingRecord(
  record: OutgoingRecord,
  partitionCounts: Map<string, number>,
  maxRecordBytes: number,
  rules: OutgoingRecordRules,
): ZerolossError | undefined {
  if (record === null || typeof record !== 'object') return new ZerolossError('ZL_INVALID_MESSAGE', 'record must be an object');
  // A topic with partitions is a valid name (it was created under one); the others are checked.
  if (!partitionCounts.has(record.topic)) {
    try {
      validateTopic(record.topic);
    } catch (error) {
      return error as ZerolossError;
    }
  }
  if (typeof record.key !== 'string') return new ZerolossError('ZL_INVALID_KEY', 'record key must be a string');
  const keyProblem = rules.checkKey?.(record.key);
  if (keyProblem) return keyProblem;
  if (!(record.value instanceof Uint8Array)) return new ZerolossError('ZL_INVALID_MESSAGE', 'record value must be a Buffer');
  const headers = record.headers ?? {};
  if (typeof headers !== 'object' || Array.isArray(headers)) return new ZerolossError('ZL_INVALID_MESSAGE', 'headers must be an object');
  let bytes = record.value.byteLength + Buffer.byteLength(record.key);
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = (headers as Record<string, unknown>)[name];
    if (typeof value !== 'string') return new ZerolossError('ZL_INVALID_MESSAGE', `header ${name} must be a string`);
    const headerProblem = rules.checkHeader?.(name, value);
    if (headerProblem) return headerProblem;
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > maxRecordBytes) {
    return new ZerolossError('ZL_PAYLOAD_TOO_LARGE', `record is ${bytes} bytes, over the limit of ${maxRecordBytes}`, {
      details: { bytes, limit: maxRecordBytes },
    });
  }
  if (!partitionCounts.has(record.topic)) {
    return new ZerolossError('ZL_TOPIC_UNAVAILABLE', `topic ${record.topic} does not exist ${rules.missingTopic}`, {
      retryable: true,
      details: { topic: record.topic },
    });
  }
  return undefined;
}
