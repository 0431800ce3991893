import { HookEmitter } from '../../core/hook-emitter.ts';
import { ZerolossError } from '../../core/errors.ts';
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
  extends HookEmitter<GroupSubscriberEvents>
  implements Subscriber
{
  /** Prefix of member ids; default host-pid. */
  protected abstract readonly clientId: string | undefined;
  /**
   * Set (to the transport's name) by a transport that cannot start a partition at an offset the caller
   * keeps: `startOffsets` is then refused before anything connects, rather than silently ignored, which
   * would redeliver or skip what the caller's database says.
   */
  protected readonly withoutStartOffsets: string | undefined = undefined;

  constructor() {
    super();
    this.on('error', () => {});
  }

  async subscribe(options: SubscribeOptions): Promise<Member> {
    const subscribe = checkSubscribeOptions(options);
    if (subscribe.startOffsets && this.withoutStartOffsets !== undefined) {
      throw new ZerolossError(
        'ZL_INVALID_CONFIG',
        `database offsets need a transport with offsets a partition can start from (Kafka, the table log); ${this.withoutStartOffsets} keeps its own delivery positions`,
        { details: { field: 'startOffsets' } },
      );
    }
    const member = this.newMember({
      memberId: newMemberId(this.clientId),
      subscribe,
      onError: (error) => {
        // Reported from inside the member's loop: a throwing listener or callback must not end it (the
        // loop would stop while the heartbeat kept the partitions, read by nobody).
        this.emit('error', error);
        try {
          subscribe.onError?.(error);
        } catch {
          // the caller's own error handler failed; nothing better to tell it
        }
      },
    });
    await member.start();
    return member;
  }

  protected abstract newMember(member: NewMember): Member;
}
