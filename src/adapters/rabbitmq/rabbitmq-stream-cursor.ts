import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { OFFSET_HEADER } from './rabbitmq-message.ts';

/** An offset, 'first', 'last' (the last chunk), or the first chunk RabbitMQ appended at or after a time. */
export type StreamStart = bigint | 'first' | 'last' | { atMs: number };

/**
 * Reads one stream queue from a position without taking anything from anyone: a stream consumer only
 * moves its own cursor, so groups, other readers and the stream's contents are untouched. It runs on a
 * channel of its own, so a refusal (a missing queue closes the channel) stays inside it.
 *
 * Messages are acked as they are taken: on a stream an ack is only credit, and `prefetch` bounds what is
 * held in memory. RabbitMQ starts a read at the chunk holding the position, so messages before it may
 * come first; callers skip them by offset.
 */
export class StreamCursor {
  readonly #channel: Channel;
  readonly #buffer: Array<{ offset: bigint; message: ConsumeMessage }> = [];
  #wake: (() => void) | undefined;
  #ended: Error | 'cancelled' | undefined;

  private constructor(channel: Channel) {
    this.#channel = channel;
  }

  static async open(conn: ChannelModel, queue: string, from: StreamStart, prefetch: number): Promise<StreamCursor> {
    const channel = await conn.createChannel();
    channel.on('error', () => {});
    const cursor = new StreamCursor(channel);
    channel.on('close', () => cursor.#end(new Error(`channel reading ${queue} closed`)));
    try {
      await channel.prefetch(prefetch);
      await channel.consume(queue, (message) => cursor.#received(message), {
        noAck: false,
        arguments: { 'x-stream-offset': streamOffsetArgument(from) },
      });
    } catch (error) {
      await channel.close().catch(() => {});
      throw error;
    }
    return cursor;
  }

  /**
   * The next message and its offset; undefined when none arrived within `waitMs` (the stream holds
   * nothing more for now) or the broker cancelled the consumer (the stream was deleted). Throws if the
   * channel closed under the read.
   */
  async next(waitMs: number): Promise<{ offset: bigint; message: ConsumeMessage } | undefined> {
    if (this.#buffer.length === 0 && this.#ended === undefined) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, waitMs);
      });
      clearTimeout(timer);
      this.#wake = undefined;
      // Timers run before socket reads in Node's loop: after a busy spell the timer can fire with deliveries
      // already waiting in the socket. One turn of the loop reads them before "nothing arrived" is believed.
      if (this.#buffer.length === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const taken = this.#buffer.shift();
    if (taken) {
      this.#channel.ack(taken.message);
      return taken;
    }
    if (this.#ended instanceof Error) throw this.#ended;
    return undefined;
  }

  async close(): Promise<void> {
    this.#ended ??= 'cancelled';
    await this.#channel.close().catch(() => {});
  }

  #received(message: ConsumeMessage | null): void {
    if (message === null) {
      this.#end('cancelled');
      return;
    }
    const offset = message.properties.headers?.[OFFSET_HEADER];
    // Every message read from a stream carries its offset; one without is not ours to count.
    if (typeof offset === 'number' || typeof offset === 'bigint') this.#buffer.push({ offset: BigInt(offset), message });
    else this.#channel.ack(message);
    this.#wake?.();
  }

  #end(reason: Error | 'cancelled'): void {
    this.#ended ??= reason;
    this.#wake?.();
  }
}

/**
 * A time goes as an AMQP timestamp, in whole seconds: rounded down, so a read starts at most a second
 * early (at a chunk written in that second), never late.
 */
function streamOffsetArgument(from: StreamStart): unknown {
  if (typeof from === 'bigint') return { '!': 'long', value: Number(from) };
  if (typeof from === 'object') return { '!': 'timestamp', value: Math.floor(from.atMs / 1000) };
  return from;
}

/**
 * The offsets a stream holds: `low` from a read at 'first', `high` one past the highest offset of the last
 * chunk (a read at 'last'), once no more arrives for `quietMs`. A passive declare of a stream answers
 * messageCount 0, and AMQP 0-9-1 has no other way to ask, so an empty stream is one from which nothing
 * came within `emptyWaitMs`. A stream still being written is read for at most `maxMs`; the answer is then
 * a snapshot a little behind, as any watermark is.
 */
export async function streamBounds(
  conn: ChannelModel,
  queue: string,
  timing: { emptyWaitMs: number; quietMs: number; maxMs: number; prefetch: number },
): Promise<{ low: bigint; high: bigint }> {
  const [first, last] = await Promise.all([
    StreamCursor.open(conn, queue, 'first', 1),
    StreamCursor.open(conn, queue, 'last', timing.prefetch),
  ]);
  try {
    const [low, end] = await Promise.all([
      first.next(timing.emptyWaitMs),
      (async () => {
        let top = await last.next(timing.emptyWaitMs);
        const stopAt = performance.now() + timing.maxMs;
        while (top && performance.now() < stopAt) {
          const more = await last.next(timing.quietMs);
          if (!more) break;
          if (more.offset > top.offset) top = more;
        }
        return top;
      })(),
    ]);
    if (!low && !end) return { low: 0n, high: 0n };
    const high = (end && (!low || end.offset > low.offset) ? end.offset : low!.offset) + 1n;
    return { low: low ? low.offset : high - 1n, high };
  } finally {
    await Promise.all([first.close(), last.close()]);
  }
}
