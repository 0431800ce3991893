import { EventEmitter } from 'node:events';
import type { SubscribeOptions, Subscriber, Subscription } from '../../ports/transport.ts';
import { checkSubscribeOptions } from './check-subscribe-options.ts';
import { newMemberId } from './group-member-config.ts';

export interface GroupSubscriberEvents {
  /** Background trouble (transport errors, a throwing callback). The subscription keeps going. */
  error: [Error];
}

/** What a new member of a group gets from its subscriber. */
export interface NewMember {
  memberId: string;
  subscribe: SubscribeOptions;
  onError: (error: Error) => void;
}

/**
 * The subscriber side of a transport that keeps its own group membership: options checked before
 * anything connects, a member id unique per subscription, background errors reported as 'error'
 * events (never thrown: a listener is always installed), and `subscribe` resolving only once the
 * member has joined and is running.
 */
export abstract class GroupSubscriber<Member extends Subscription & { start(): Promise<void> }>
  extends EventEmitter<GroupSubscriberEvents>
  implements Subscriber
{
  /** Prefix of member ids; default host-pid. */
  protected abstract readonly clientId: string | undefined;

  constructor() {
    super();
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<Member> {
    const subscribe = checkSubscribeOptions(options);
    const member = this.newMember({ memberId: newMemberId(this.clientId), subscribe, onError: (error) => this.emit('error', error) });
    await member.start();
    return member;
  }

  protected abstract newMember(member: NewMember): Member;
}
