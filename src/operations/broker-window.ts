import type { BrokerInspector, BrokerRecord, PartitionRange, ReadStats } from '../ports/broker-inspector.ts';

/**
 * The offsets of `topic` that hold records written in [fromMs, toMs): per partition from the first record
 * at or after `fromMs` to the first at or after `toMs` (the end of the partition when none is). Broker
 * timestamps are the producer's clock, so callers widen the window by a slack for clock skew.
 */
export async function windowRanges(broker: BrokerInspector, topic: string, fromMs: number, toMs: number): Promise<PartitionRange[]> {
  const marks = await broker.watermarks(topic);
  if (!marks) return [];
  const start = new Map((await broker.offsetsForTime(topic, fromMs)).map((p) => [p.partition, p.offset]));
  const end = toMs > Date.now() ? undefined : new Map((await broker.offsetsForTime(topic, toMs)).map((p) => [p.partition, p.offset]));
  const ranges: PartitionRange[] = [];
  for (const m of marks) {
    const from = maxBig(start.get(m.partition) ?? m.high, m.low);
    const to = end?.get(m.partition) ?? m.high;
    if (from < to) ranges.push({ topic, partition: m.partition, from, to });
  }
  return ranges;
}

/** Reads the records of `topic` written in [fromMs, toMs), streaming; see `windowRanges`. */
export async function* readWindow(
  broker: BrokerInspector,
  topic: string,
  fromMs: number,
  toMs: number,
  stats?: ReadStats,
): AsyncIterable<BrokerRecord> {
  const ranges = await windowRanges(broker, topic, fromMs, toMs);
  if (ranges.length > 0) yield* broker.read(ranges, stats);
}

/** `<topic>.retry.<n>` topics that exist for `topic`, in retry order. */
export function retryTopicsOf(topic: string, allTopics: string[]): string[] {
  const prefix = `${topic}.retry.`;
  return allTopics
    .filter((t) => t.startsWith(prefix) && /^\d+$/.test(t.slice(prefix.length)))
    .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)));
}

export function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
