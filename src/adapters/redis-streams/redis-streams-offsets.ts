/**
 * Offsets on Redis Streams. The publisher appends with the id `0-*`, so Redis numbers a partition's
 * entries 0-1, 0-2, 0-3 … atomically, whoever writes: offsets are dense like Kafka's, and an offset
 * survives redelivery because it is the entry's own id. offset = seq - 1, so the first entry is offset 0.
 *
 * An id with a non-zero milliseconds part (an entry some other writer added with `*`) still maps to a
 * unique, increasing offset: ms in the high 64 bits.
 */
const SEQ_BITS = 64n;
const SEQ_MASK = (1n << SEQ_BITS) - 1n;

export function offsetOfId(id: string): bigint {
  const dash = id.indexOf('-');
  if (dash < 1) throw new RangeError(`not a stream entry id: ${id}`);
  return (BigInt(id.slice(0, dash)) << SEQ_BITS) + BigInt(id.slice(dash + 1)) - 1n;
}

export function idOfOffset(offset: bigint): string {
  const n = offset + 1n;
  return `${n >> SEQ_BITS}-${n & SEQ_MASK}`;
}
