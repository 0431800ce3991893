/**
 * Deleting a consumer group's committed positions, for groups nobody runs any more. Every broker keeps
 * them until told otherwise (or, on RabbitMQ, until they expire unused): short-lived groups — a test, a
 * one-off replay, a renamed service — pile up, and on RabbitMQ each is a quorum queue per partition.
 */
export interface GroupAdmin {
  /**
   * Deletes what `groupId` committed on `topics` (and, where the broker keeps them per group, its
   * membership records). Refuses with `ZL_GROUP_ACTIVE` while a member of the group is alive: a running
   * consumer would otherwise start over from its `startFrom` at its next assignment.
   */
  deleteGroup(groupId: string, topics: string[]): Promise<GroupDeletion>;
}

export interface GroupDeletion {
  groupId: string;
  /** What went, one line each (queue, stream group, offset row), as the broker names it. */
  deleted: string[];
}
