import { ZerolossError } from '../core/errors.ts';
import type { Delivery } from './delivery.ts';

/** The rest of the chain, from the next stage on. */
export type Next<D extends Delivery> = (delivery: D) => Promise<void>;

/**
 * One stage of a chain: does its part, calls `next` with the same delivery (typed as what it is once this
 * stage has done its part: `Out`), and may act on the outcome once `next` returns or throws.
 */
export type Stage<In extends Delivery, Out extends In = In> = (delivery: In, next: Next<Out>) => Promise<void>;

interface Link {
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: the builder's types checked each link's input against the previous output
  stage: Stage<any, any>;
  perAttempt: boolean;
}

/**
 * Builds a chain of stages as an onion, outermost first. The types follow the chain: a stage taking a
 * `RoutedDelivery` can only be added after the stage that produces one.
 *
 * A stage calls `next` at most once, with the delivery it was given; a second call rejects (as Hono's
 * compose does). The one exception is declared where the stage is added: a stage added with `perAttempt`
 * (the retry stage) calls `next` once per attempt, each only after the previous call failed, and the
 * stages after it then run afresh for each attempt.
 */
export class Chain<D extends Delivery> {
  readonly #links: readonly Link[];

  private constructor(links: readonly Link[]) {
    this.#links = links;
  }

  static start(): Chain<Delivery> {
    return new Chain<Delivery>([]);
  }

  add<Out extends D>(name: string, stage: Stage<D, Out>, options: { perAttempt?: boolean } = {}): Chain<Out> {
    return new Chain<Out>([...this.#links, { name, stage, perAttempt: options.perAttempt ?? false }]);
  }

  /** The stage names, outermost first. */
  get names(): string[] {
    return this.#links.map((l) => l.name);
  }

  build(): (delivery: Delivery) => Promise<void> {
    const links = this.#links;
    const dispatch = (i: number, delivery: Delivery): Promise<void> => {
      const link = links[i];
      if (!link) return Promise.resolve();
      let state: 'unused' | 'running' | 'failed' | 'done' = 'unused';
      const next = async (passed: Delivery): Promise<void> => {
        if (passed !== delivery) throw new ZerolossError('ZL_UNKNOWN', `stage ${link.name} passed another delivery to next()`);
        if (state === 'running' || state === 'done' || (state === 'failed' && !link.perAttempt)) {
          throw new ZerolossError('ZL_UNKNOWN', `stage ${link.name} called next() more than once`);
        }
        state = 'running';
        try {
          await dispatch(i + 1, delivery);
          state = 'done';
        } catch (error) {
          state = 'failed';
          throw error;
        }
      };
      return link.stage(delivery, next);
    };
    return (delivery) => dispatch(0, delivery);
  }
}
