import { KafkaSubscriber, type KafkaSubscription } from '../src/adapters/kafka/kafka-subscriber.ts';
import type { SubscribeOptions } from '../src/ports/transport.ts';
import { subscribeCommittingOnHandover } from './commit-on-handover.ts';

/**
 * TEST-ONLY deliberately broken build for `--exactly-once kafka-transactions` (`--broken
 * offsets-outside-transaction`): a subscriber whose subscriptions commit each batch's offsets through the
 * group, outside any transaction, the moment the batch is handed to the processor, before the transaction
 * that produces its outputs has even begun. The mistake Kafka transactions exist to prevent: when the
 * process dies or loses the partition before its transaction commits, the transaction is aborted but the
 * position has moved past its inputs, so their outputs never appear (lost). The fault lives in this
 * wrapper of the Subscriber port, never in the processor.
 */
export class SubscriberCommittingOnHandover extends KafkaSubscriber {
  override subscribe(options: SubscribeOptions): Promise<KafkaSubscription> {
    return subscribeCommittingOnHandover(options, (wrapped) => super.subscribe(wrapped));
  }
}
