import type { Admin } from '@platformatic/kafka';
import { ZerolossError } from '../../core/errors.ts';
import type { GroupAdmin, GroupDeletion } from '../../ports/group-admin.ts';

/**
 * `zeroloss groups delete` on Kafka: the group's committed offsets on the topics (OffsetDelete), and the
 * group itself once it has none left. The broker would refuse OffsetDelete for a topic a member still
 * subscribes to; refusing any live member first gives every transport the same rule and error.
 */
export class KafkaGroupAdmin implements GroupAdmin {
  readonly #admin: Admin;

  constructor(admin: Admin) {
    this.#admin = admin;
  }

  async deleteGroup(groupId: string, topics: string[]): Promise<GroupDeletion> {
    const group = (await this.#admin.describeGroups({ groups: [groupId] })).get(groupId);
    if (group && group.members.size > 0) {
      throw new ZerolossError('ZL_GROUP_ACTIVE', `group ${groupId} has live members (${group.state}); stop its consumers first`, {
        details: { groupId },
      });
    }
    const committed = await this.#committed(groupId);
    const doomed = topics.filter((t) => committed.has(t)).map((name) => ({ name, partitionIndexes: committed.get(name) ?? [] }));
    if (doomed.length > 0) await this.#admin.deleteConsumerGroupOffsets({ groupId, topics: doomed });
    const deleted = doomed.flatMap((t) => t.partitionIndexes.map((p) => `${t.name}[${p}]`));
    // Nothing left on other topics: the group itself goes, as `kafka-consumer-groups --delete` would.
    if (committed.size > 0 && [...committed.keys()].every((t) => topics.includes(t))) {
      await this.#admin.deleteGroups({ groups: [groupId] });
      deleted.push(`group ${groupId}`);
    }
    return { groupId, deleted };
  }

  /** Partitions with a committed offset, per topic. */
  async #committed(groupId: string): Promise<Map<string, number[]>> {
    const [listed] = await this.#admin.listConsumerGroupOffsets({ groups: [groupId] });
    const out = new Map<string, number[]>();
    for (const topic of listed?.topics ?? []) {
      const partitions = topic.partitions.filter((p) => p.committedOffset >= 0n).map((p) => p.partitionIndex);
      if (partitions.length > 0) out.set(topic.name, partitions);
    }
    return out;
  }
}
