import { compatibilityPartitioner } from '@platformatic/kafka';

/**
 * The partition of a key: murmur2 of its UTF-8 bytes, made non-negative, modulo the partition count —
 * what Kafka's Java client does. A key therefore lands on the same partition number here as on a Kafka
 * topic with the same count, so moving from the table log to Kafka keeps per-key order intact.
 */
export function partitionFor(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partition count must be a positive integer, got ${partitions}`);
  return compatibilityPartitioner(undefined as never, Buffer.from(key, 'utf8')) % partitions;
}
