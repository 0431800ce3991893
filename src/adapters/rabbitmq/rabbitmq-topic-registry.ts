import type { ChannelModel } from 'amqplib';
import { isNotFound } from './rabbitmq-errors.ts';
import { rabbitNames } from './rabbitmq-names.ts';
import { StreamCursor } from './rabbitmq-stream-cursor.ts';

/**
 * AMQP 0-9-1 cannot list queues, and the management API is a plugin with its own port and credentials,
 * so the names of the topics live in a stream of their own (`zl.topics`): createTopic appends `+<topic>`
 * every time it runs (a few bytes; the reader keeps each name once), deleteTopic appends `-<topic>` ('+'
 * cannot start a topic name), the inspector reads them back in order. A topic whose partitions were
 * declared some other way is not listed until createTopic runs for it.
 */
export async function registerTopic(conn: ChannelModel, topic: string, change: 'created' | 'deleted' = 'created'): Promise<void> {
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  try {
    await ch.assertQueue(rabbitNames.topics, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    ch.publish('', rabbitNames.topics, Buffer.from(`${change === 'created' ? '+' : '-'}${topic}`), { persistent: true, mandatory: true });
    await ch.waitForConfirms();
  } finally {
    await ch.close().catch(() => {});
  }
}

/**
 * The names registered and not deleted since, read from the start of the stream until nothing more
 * arrives for `quietMs` (`emptyWaitMs` for the first). Callers still check the partitions: a topic's
 * queues can be deleted by hand.
 */
export async function registeredTopics(conn: ChannelModel, timing: { emptyWaitMs: number; quietMs: number }): Promise<string[]> {
  let cursor: StreamCursor;
  try {
    cursor = await StreamCursor.open(conn, rabbitNames.topics, 'first', 500);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
  const names = new Set<string>();
  try {
    for (let got = await cursor.next(timing.emptyWaitMs); got; got = await cursor.next(timing.quietMs)) {
      const entry = got.message.content.toString();
      if (entry.startsWith('+')) names.add(entry.slice(1));
      else if (entry.startsWith('-')) names.delete(entry.slice(1));
    }
  } finally {
    await cursor.close();
  }
  return [...names].sort();
}
