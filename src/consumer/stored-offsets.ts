import type { InboxStore } from '../ports/inbox-store.ts';

type Partition = { topic: string; partition: number };

/**
 * With `offsetStore: 'database'`, where each assigned partition starts: the next offset stored with the
 * effects, for the partitions asked about only (the inbox answers per topic). A partition with nothing
 * stored is left out, so the transport starts it from its own committed offset.
 */
export async function loadStored(
  inbox: Pick<InboxStore, 'loadOffsets'>,
  groupId: string,
  partitions: Partition[],
): Promise<Array<Partition & { offset: bigint }>> {
  const wanted = new Set(partitions.map((p) => `${p.topic}\u0000${p.partition}`));
  const stored = await inbox.loadOffsets(groupId, [...new Set(partitions.map((p) => p.topic))]);
  return stored.filter((p) => wanted.has(`${p.topic}\u0000${p.partition}`));
}
