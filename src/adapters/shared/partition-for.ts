import { compatibilityPartitioner } from '@platformatic/kafka';

/**
 * The partition of a key: murmur2 of its UTF-8 bytes, made non-negative, modulo the partition count —
 * what Kafka's Java client does. Every partitioned transport (table log, Redis Streams, RabbitMQ) uses it,
 * so a key lands on the same partition number as on a Kafka topic with the same count, and moving between
 * transports keeps per-key order intact.
 */
export function partitionFor(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partition count must be a positive integer, got ${partitions}`);
  return compatibilityPartitioner(undefined as never, Buffer.from(key, 'utf8')) % partitions;
}
