import { assignPartitions, type GroupMember, type TopicPartitionCount } from './assign-partitions.ts';
import { partitionSlot } from './partition-slot.ts';

/**
 * The partitions (as partition slots) the assignment gives `memberId`, computed from the live members
 * and the topics' partition counts (an array, or a map from topic to count). Every member computes the
 * same assignment from the same inputs, so no coordinator is needed.
 */
export function memberShare(memberId: string, members: GroupMember[], counts: TopicPartitionCount[] | Map<string, number>): Set<string> {
  const topics = counts instanceof Map ? [...counts].map(([topic, partitions]) => ({ topic, partitions })) : counts;
  return new Set(
    assignPartitions(members, topics)
      .filter((a) => a.memberId === memberId)
      .map(partitionSlot),
  );
}

/** The partitions of an owned-partition map that are still delivered (not revoked, not lost). */
export function activePartitions(
  owned: Iterable<{ topic: string; partition: number; state: string }>,
): Array<{ topic: string; partition: number }> {
  return [...owned].filter((p) => p.state === 'active').map(({ topic, partition }) => ({ topic, partition }));
}
