export interface GroupMember {
  memberId: string;
  topics: string[];
}

export interface TopicPartitionCount {
  topic: string;
  partitions: number;
}

export interface PartitionAssignment {
  topic: string;
  partition: number;
  memberId: string;
}

/**
 * Spreads the partitions of a group's topics over its live members. There is no coordinator: every
 * member computes this on its own from the same rows, so it must be a pure function of the member list
 * and partition counts (order of the inputs does not matter). Each partition goes to the subscribed
 * member holding the fewest so far, ties broken by member id; with equal subscriptions that is plain
 * round robin and every member ends up within one partition of the others.
 *
 * It is not sticky: a join or leave can move partitions that did not strictly need to move. Each move
 * costs a revoke and a re-read from the committed offset, never a lost record.
 */
export function assignPartitions(members: GroupMember[], topics: TopicPartitionCount[]): PartitionAssignment[] {
  const sortedMembers = [...members].sort((a, b) => compare(a.memberId, b.memberId));
  const load = new Map(sortedMembers.map((m) => [m.memberId, 0]));
  const assignment: PartitionAssignment[] = [];
  for (const { topic, partitions } of [...topics].sort((a, b) => compare(a.topic, b.topic))) {
    const eligible = sortedMembers.filter((m) => m.topics.includes(topic));
    if (eligible.length === 0) continue;
    for (let partition = 0; partition < partitions; partition++) {
      let chosen = eligible[0]!;
      for (const m of eligible) if (load.get(m.memberId)! < load.get(chosen.memberId)!) chosen = m;
      load.set(chosen.memberId, load.get(chosen.memberId)! + 1);
      assignment.push({ topic, partition, memberId: chosen.memberId });
    }
  }
  return assignment;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
