import type { ChannelModel } from 'amqplib';
import { isNotFound } from './rabbitmq-errors.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { registerTopic } from './rabbitmq-topic-registry.ts';

/**
 * Topic layout on RabbitMQ: one durable stream queue per partition. Streams, not classic or quorum
 * queues, because the port needs what a log gives and a queue does not: offsets that stay the same on
 * redelivery, several groups each reading everything, and a new group reading what was published before
 * it existed.
 */

/**
 * Declares the partition streams from the highest down, so a reader counting partitions upward from 0
 * (probePartitions) sees either the old count or the new one, never a prefix of the new one with a gap.
 */
export async function declareTopic(conn: ChannelModel, topic: string, partitions: number, maxLengthBytes?: number): Promise<void> {
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  try {
    for (let p = partitions - 1; p >= 0; p--) {
      await ch.assertQueue(rabbitNames.partition(topic, p), {
        durable: true,
        arguments: { 'x-queue-type': 'stream', ...(maxLengthBytes === undefined ? {} : { 'x-max-length-bytes': maxLengthBytes }) },
      });
    }
  } finally {
    await ch.close().catch(() => {});
  }
  // After the partitions: a listed topic always has them.
  await registerTopic(conn, topic);
}

/**
 * The partition count of a topic: how many of `<topic>:0`, `<topic>:1`, … exist (0 if none). RabbitMQ
 * keeps no topic record to read, and a passive declare of a missing queue closes its channel, so each
 * probe runs on a throwaway channel.
 */
export async function probePartitions(conn: ChannelModel, topic: string): Promise<number> {
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  let count = 0;
  try {
    for (;;) {
      await ch.checkQueue(rabbitNames.partition(topic, count));
      count++;
    }
  } catch (error) {
    if (!isNotFound(error)) throw error;
    return count;
  } finally {
    await ch.close().catch(() => {});
  }
}

export async function deleteTopic(conn: ChannelModel, topic: string): Promise<void> {
  const partitions = await probePartitions(conn, topic);
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  try {
    for (let p = 0; p < partitions; p++) await ch.deleteQueue(rabbitNames.partition(topic, p));
  } finally {
    await ch.close().catch(() => {});
  }
  await registerTopic(conn, topic, 'deleted');
}
