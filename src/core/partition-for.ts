const utf8 = new TextEncoder();

/**
 * The partition of a key: murmur2 of its UTF-8 bytes, made non-negative, modulo the partition count —
 * what Kafka's Java client does (`Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions`). Every
 * partitioned transport (table log, Redis Streams, RabbitMQ) uses it, so a key lands on the same partition
 * number as on a Kafka topic with the same count, and moving between transports keeps per-key order intact.
 */
export function partitionFor(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new RangeError(`partition count must be a positive integer, got ${partitions}`);
  return (murmur2(asciiBytes(key) ?? utf8.encode(key)) & 0x7fffffff) % partitions;
}

/**
 * A key of ASCII characters only (the common case: ids, numbers) as its UTF-8 bytes without encoding it:
 * the relay hashes every record's key twice (its lanes, the publisher), and the encoder's allocation per
 * call showed in its profile. One scratch buffer, reused: murmur2 reads it before anything else can.
 */
function asciiBytes(key: string): Uint8Array | undefined {
  const length = key.length;
  if (length > scratch.length) return undefined;
  for (let i = 0; i < length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return undefined;
    scratch[i] = c;
  }
  return scratch.subarray(0, length);
}
const scratch = new Uint8Array(256);

/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils#murmur2), in 32-bit signed arithmetic as Java does
 * it: Math.imul for the wrapping multiply, `>>>` for Java's unsigned shift.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const whole = length - (length % 4);
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  // The tail bytes, as Java's fall-through switch takes them.
  const rest = length % 4;
  if (rest === 3) h ^= (data[whole + 2] as number) << 16;
  if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[whole] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
