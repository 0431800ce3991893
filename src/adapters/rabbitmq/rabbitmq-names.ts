import { createHash } from 'node:crypto';

/**
 * Every RabbitMQ name the transport uses, in one place. Topic names cannot contain ':' (validateTopic)
 * and partitions are numbers, so names read from the right are unambiguous even when a group id holds
 * ':'. A name over RabbitMQ's 255-byte limit keeps its kind and is shortened to a hash.
 *
 * - `<topic>:<partition>`: the partition's stream queue; publishers route to it by name.
 * - `zl.offset:<group>:<topic>:<partition>`: the group's committed offset (a one-message quorum queue).
 * - `zl.lock:<group>:<topic>:<partition>`: exclusive queue; whoever declared it owns the partition.
 * - `zl.group:<group>`: fanout exchange the group's members announce themselves on.
 * - `zl.peek:<group>:<topic>:<partition>`: exclusive queue held while the offset message is taken and put
 *   back, so two readers never find it taken (see rabbitmq-offset-peek.ts).
 * - `zl.topics`: stream of the topic names createTopic declared (AMQP cannot list queues).
 */
export const rabbitNames = {
  partition: (topic: string, partition: number) => `${topic}:${partition}`,
  offset: (groupId: string, topic: string, partition: number) => fit('zl.offset:', `${groupId}:${topic}:${partition}`),
  lock: (groupId: string, topic: string, partition: number) => fit('zl.lock:', `${groupId}:${topic}:${partition}`),
  group: (groupId: string) => fit('zl.group:', groupId),
  peek: (groupId: string, topic: string, partition: number) => fit('zl.peek:', `${groupId}:${topic}:${partition}`),
  topics: 'zl.topics',
} as const;

const MAX_NAME_BYTES = 255;

function fit(kind: string, rest: string): string {
  const name = kind + rest;
  if (Buffer.byteLength(name) <= MAX_NAME_BYTES) return name;
  return `${kind}sha1:${createHash('sha1').update(rest).digest('hex')}`;
}
