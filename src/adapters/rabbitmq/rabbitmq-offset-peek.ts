import { setTimeout as delay } from 'node:timers/promises';
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { ZerolossError } from '../../core/errors.ts';
import { isResourceLocked } from './rabbitmq-errors.ts';
import { rabbitNames } from './rabbitmq-names.ts';

const PEEK_ATTEMPTS = 40;

/**
 * Reads a group's committed offset of a partition (the one message of its `zl.offset:…` quorum queue) and
 * puts it back. A quorum queue cannot be read without taking: while one reader holds the message, a
 * `basic.get` of another finds the queue empty and would take it for "no offset yet" — a member taking the
 * partition over would then start at `startFrom` ('latest' skips records). So every reader (the member
 * taking the partition, the inspector) first declares the exclusive queue `zl.peek:…` on its connection and
 * deletes it afterwards; a reader that finds it held waits for it (the holder keeps it for one round trip;
 * RabbitMQ deletes it with a holder's connection). The writer takes it too (see writeOffset).
 *
 * `get` runs on `channel` (the caller's; the member's control channel); the peek queue is declared on a
 * throwaway channel, since a refused declare closes its channel. Undefined when the queue holds no offset.
 */
export async function peekOffset(
  conn: ChannelModel,
  channel: Channel,
  key: { groupId: string; topic: string; partition: number },
): Promise<bigint | undefined> {
  return underPeek(conn, key, 'read', async () => {
    const queue = rabbitNames.offset(key.groupId, key.topic, key.partition);
    const message = await channel.get(queue, { noAck: false });
    if (message === false) return undefined;
    channel.nack(message, false, true);
    await untilReady(conn, queue);
    const text = message.content.toString();
    return /^\d+$/.test(text) ? BigInt(text) : undefined;
  });
}

/**
 * Stores `offset` as the group's committed offset of the partition, confirmed, under the peek queue. A
 * commit that reached the queue while a reader held the old message was lost: the queue keeps one message
 * (max-length 1), and RabbitMQ dropped the new one when the old one was put back, after confirming it. The
 * offset then stayed behind until the next commit, which never comes once the partition is read to its end:
 * its lag stayed above 0 (the demo's settle wait ran into its timeout) and the next owner re-read records.
 */
export async function writeOffset(
  conn: ChannelModel,
  channel: ConfirmChannel,
  key: { groupId: string; topic: string; partition: number },
  offset: bigint,
): Promise<void> {
  await underPeek(conn, key, 'written', async () => {
    const queue = rabbitNames.offset(key.groupId, key.topic, key.partition);
    await new Promise<void>((resolve, reject) => {
      channel.publish('', queue, Buffer.from(offset.toString()), { persistent: true }, (error) => (error ? reject(error) : resolve()));
    });
  });
}

async function underPeek<T>(
  conn: ChannelModel,
  key: { groupId: string; topic: string; partition: number },
  what: 'read' | 'written',
  fn: () => Promise<T>,
): Promise<T> {
  const peek = rabbitNames.peek(key.groupId, key.topic, key.partition);
  const lock = await holdPeek(conn, peek, what);
  try {
    return await fn();
  } finally {
    await lock.deleteQueue(peek).catch(() => {});
    await lock.close().catch(() => {});
  }
}

/**
 * The put-back travels through the caller's channel and the queue's Raft log, which no reply waits for; the
 * peek queue is released only once the queue shows a ready message again, so the next reader cannot get
 * in first and find it empty. Bounded: a queue deleted meanwhile, or a slow one, is left after ~1 s.
 */
async function untilReady(conn: ChannelModel, queue: string): Promise<void> {
  // Its own channel: a passive declare of a queue deleted meanwhile closes the channel it ran on.
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  try {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const { messageCount } = await ch.checkQueue(queue);
      if (messageCount > 0) return;
      await delay(Math.min(5 * attempt, 60));
    }
  } catch {
    // The queue is gone: nothing to wait for.
  } finally {
    await ch.close().catch(() => {});
  }
}

async function holdPeek(conn: ChannelModel, peek: string, what: 'read' | 'written'): Promise<Channel> {
  for (let attempt = 1; ; attempt++) {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    try {
      await ch.assertQueue(peek, { exclusive: true, durable: false, autoDelete: false });
      return ch;
    } catch (error) {
      await ch.close().catch(() => {});
      if (!isResourceLocked(error)) throw error;
      if (attempt >= PEEK_ATTEMPTS) {
        throw new ZerolossError('ZL_TRANSPORT_UNAVAILABLE', `${peek} stayed held by a reader; the offset was not ${what}`, {
          retryable: true,
        });
      }
      // Held by another reader for one get-and-put-back: a short, growing wait (about 2 s in all).
      await delay(Math.min(5 * attempt, 60));
    }
  }
}
