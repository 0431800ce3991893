import type { SubscribeOptions, Subscriber, Subscription } from '../src/ports/transport.ts';

/**
 * TEST-ONLY deliberately broken build (`--broken log-offsets-before-effect`, `--transport table-log`): the
 * consumers' subscriber commits each batch's next offset (in the table log, a row of log_group_offset) the
 * moment it hands the batch over, before the consumer has applied one effect of it. A consumer killed, or
 * whose partition moves, before its effect transactions commit leaves a position past messages nobody
 * applied: lost. The fault lives in this wrapper of the Subscriber port, never in the transport or the
 * consumer.
 */
export function commitsOnHandover(inner: Subscriber): Subscriber {
  return { subscribe: (options) => subscribeCommittingOnHandover(options, (wrapped) => inner.subscribe(wrapped)) };
}

/**
 * Subscribes through `subscribe` with `options` whose batches, as each is handed over, have their next offset
 * committed on the resulting subscription: the broken step both broken builds (this one and
 * offsets-outside-transaction.ts) are made of.
 */
export async function subscribeCommittingOnHandover<S extends Subscription>(
  options: SubscribeOptions,
  subscribe: (options: SubscribeOptions) => Promise<S>,
): Promise<S> {
  let subscription: S | undefined;
  subscription = await subscribe({
    ...options,
    onRecords: (batch) => {
      options.onRecords(batch);
      const last = batch.records.at(-1);
      if (!last) return;
      void subscription?.commit([{ topic: last.topic, partition: last.partition, offset: last.offset + 1n }]).catch(() => {});
    },
  });
  return subscription;
}
