import { ZerolossError } from '../../core/errors.ts';
import { validateTopic } from '../../core/message.ts';
import type { SubscribeOptions } from '../../ports/transport.ts';

const MAX_GROUP_ID = 200;

/**
 * The subscribe-option checks of the group transports that keep their own membership (table log, Redis
 * Streams, RabbitMQ): a bad option is a ZL_INVALID_CONFIG (or the topic's own error) before anything
 * connects. Topics come back deduplicated and sorted, so every member of a group announces the same list.
 */
export function checkSubscribeOptions(options: SubscribeOptions): SubscribeOptions {
  if (options === null || typeof options !== 'object') throw new ZerolossError('ZL_INVALID_CONFIG', 'subscribe options must be an object');
  const { groupId, topics, onRecords, onRevoke, onAssign, startOffsets } = options;
  if (typeof groupId !== 'string' || groupId.length === 0 || groupId.length > MAX_GROUP_ID) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `groupId must be a string of 1-${MAX_GROUP_ID} characters`);
  }
  if (!Array.isArray(topics) || topics.length === 0) throw new ZerolossError('ZL_INVALID_CONFIG', 'topics must be a non-empty array');
  for (const topic of topics) validateTopic(topic);
  if (typeof onRecords !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onRecords must be a function');
  if (onRevoke !== undefined && typeof onRevoke !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onRevoke must be a function');
  if (onAssign !== undefined && typeof onAssign !== 'function') throw new ZerolossError('ZL_INVALID_CONFIG', 'onAssign must be a function');
  if (startOffsets !== undefined && typeof startOffsets !== 'function')
    throw new ZerolossError('ZL_INVALID_CONFIG', 'startOffsets must be a function');
  return { ...options, topics: [...new Set(topics)].sort() };
}
