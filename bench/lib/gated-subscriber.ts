import type { Subscriber, Subscription } from '../../src/ports/transport.ts';

/**
 * Wraps a subscriber so that its subscriptions read nothing until `open()`: the consumer joins its group and
 * takes its partitions while the gate is shut, so a scale run can time steady consumption after every
 * instance holds its share instead of the first joiner racing through the backlog alone. The consumer's own
 * pause (its batch-size backpressure) still applies after the gate opens.
 */
export class GatedSubscriber implements Subscriber {
  readonly #inner: Subscriber;
  readonly #subscriptions = new Set<{ open: () => void }>();
  #open = false;

  constructor(inner: Subscriber) {
    this.#inner = inner;
  }

  open(): void {
    this.#open = true;
    for (const s of this.#subscriptions) s.open();
  }

  async subscribe(options: Parameters<Subscriber['subscribe']>[0]): Promise<Subscription> {
    let pausedByConsumer = false;
    let inner: Subscription | undefined;
    // Records a stream pushed before the pause below took hold wait here, in order, until the gate opens.
    const held: Parameters<typeof options.onRecords>[0][] = [];
    const subscription = await this.#inner.subscribe({
      ...options,
      onRecords: (batch) => {
        if (this.#open) options.onRecords(batch);
        else held.push(batch);
      },
      onRevoke: async (partitions) => {
        held.length = 0;
        await options.onRevoke?.(partitions);
      },
    });
    inner = subscription;
    if (!this.#open) inner.pause();
    this.#subscriptions.add({
      open: () => {
        for (const batch of held.splice(0)) options.onRecords(batch);
        if (!pausedByConsumer) inner?.resume();
      },
    });
    return {
      commit: (offsets) => subscription.commit(offsets),
      pause: () => {
        pausedByConsumer = true;
        subscription.pause();
      },
      resume: () => {
        pausedByConsumer = false;
        if (this.#open) subscription.resume();
      },
      close: () => subscription.close(),
      ...(subscription.lag ? { lag: () => (subscription.lag as NonNullable<Subscription['lag']>)() } : {}),
    };
  }
}
