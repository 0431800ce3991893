import type { Channel } from 'amqplib';
import type { GroupMember } from '../shared/assign-partitions.ts';
import { rabbitNames } from './rabbitmq-names.ts';

interface Announcement {
  memberId: string;
  topics: string[];
  leaving?: boolean;
}

/**
 * Who is in a group, learned from the members themselves: each one binds an exclusive queue to the
 * group's fanout exchange and announces itself there every heartbeat; a member not heard from for a
 * session is taken for gone. This only decides who should own what: ownership itself is the lock queue,
 * which RabbitMQ deletes with its connection, so two members with different views still never own one
 * partition together.
 */
export class RabbitMembership {
  readonly #ch: Channel;
  readonly #exchange: string;
  readonly #self: Announcement;
  readonly #sessionMs: number;
  readonly #peers = new Map<string, { topics: string[]; seen: number }>();

  constructor(options: { channel: Channel; groupId: string; memberId: string; topics: string[]; sessionMs: number }) {
    this.#ch = options.channel;
    this.#exchange = rabbitNames.group(options.groupId);
    this.#self = { memberId: options.memberId, topics: options.topics };
    this.#sessionMs = options.sessionMs;
  }

  async join(): Promise<void> {
    await this.#ch.assertExchange(this.#exchange, 'fanout', { durable: false, autoDelete: true });
    const { queue } = await this.#ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await this.#ch.bindQueue(queue, this.#exchange, '');
    await this.#ch.consume(queue, (message) => message && this.#heard(message.content), { noAck: true });
    this.announce();
  }

  announce(leaving = false): void {
    this.#ch.publish(this.#exchange, '', Buffer.from(JSON.stringify({ ...this.#self, leaving })));
  }

  /** This member and every peer heard from within the session. */
  members(): GroupMember[] {
    const now = Date.now();
    const live: GroupMember[] = [{ memberId: this.#self.memberId, topics: this.#self.topics }];
    for (const [memberId, peer] of this.#peers) {
      if (now - peer.seen > this.#sessionMs) this.#peers.delete(memberId);
      else live.push({ memberId, topics: peer.topics });
    }
    return live;
  }

  #heard(content: Buffer): void {
    let a: Partial<Announcement>;
    try {
      a = JSON.parse(content.toString());
    } catch {
      return;
    }
    if (typeof a.memberId !== 'string' || a.memberId === this.#self.memberId) return;
    if (a.leaving) this.#peers.delete(a.memberId);
    else
      this.#peers.set(a.memberId, {
        topics: Array.isArray(a.topics) ? a.topics.filter((t) => typeof t === 'string') : [],
        seen: Date.now(),
      });
  }
}
