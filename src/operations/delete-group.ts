import { ZerolossError } from '../core/errors.ts';
import { validateTopic } from '../core/message.ts';
import type { GroupAdmin } from '../ports/group-admin.ts';
import type { InterventionStore, StoredOffset } from '../ports/operations-store.ts';
import { type Actor, actorOf } from './intervention.ts';

export interface DeletedGroup {
  groupId: string;
  topics: string[];
  /** What the broker deleted, as it names it (queues, stream groups, partitions). */
  broker: string[];
  /** Positions the group had stored with its effects (P10), now deleted. */
  storedOffsets: StoredOffset[];
}

/**
 * Deletes a finished group's positions on `topics`, at the broker and in the store, and audits it. The
 * broker goes first: while a member is alive it refuses (ZL_GROUP_ACTIVE) and nothing changes. The
 * inbox stays, so a group started again under the same name re-reads from its `startFrom` and applies
 * nothing twice.
 */
export async function deleteGroup(
  deps: { groups: GroupAdmin; store: Pick<InterventionStore, 'deleteStoredOffsets' | 'audit'> },
  options: { groupId: string; topics: string[]; who: Actor },
): Promise<DeletedGroup> {
  const { groupId, topics } = options;
  if (typeof groupId !== 'string' || groupId.trim() === '') throw new ZerolossError('ZL_INVALID_CONFIG', 'a group id is required');
  if (topics.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'name the topics whose positions go (--topic)');
  for (const topic of topics) validateTopic(topic);
  const { deleted } = await deps.groups.deleteGroup(groupId, topics);
  const storedOffsets = await deps.store.deleteStoredOffsets(groupId, topics);
  await deps.store.audit({
    actor: actorOf(options.who),
    action: 'group.delete',
    subject: `group:${groupId}`,
    reason: options.who.reason,
    details: { topics, broker: deleted, storedOffsets },
  });
  return { groupId, topics, broker: deleted, storedOffsets };
}
