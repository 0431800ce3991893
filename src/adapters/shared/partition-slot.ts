/** A topic partition as one map key; NUL cannot occur in a topic name, so the split is unambiguous. */
export function partitionSlot(p: { topic: string; partition: number }): string {
  return `${p.topic}\u0000${p.partition}`;
}

export function fromPartitionSlot(slot: string): { topic: string; partition: number } {
  const [topic, partition] = slot.split('\u0000') as [string, string];
  return { topic, partition: Number(partition) };
}
