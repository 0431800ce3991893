import type { Clock } from '../src/ports/clock.ts';

/**
 * The producer's clock in the `clock-step` scenario: the system clock minus an offset that the nemesis
 * grows, so it jumps back at once and then runs on at its normal rate from the earlier time, as a clock
 * stepped back by NTP or a VM restored from a snapshot does. Injected through the outbox's `clock` option;
 * zeroloss itself has no switch for it.
 */
export class SteppedClock implements Clock {
  #behindMs = 0;

  now(): number {
    return Date.now() - this.#behindMs;
  }

  /** Steps the clock back by `ms` from where it is now. */
  stepBack(ms: number): void {
    this.#behindMs += ms;
  }

  /** How far behind the system clock it runs. */
  get behindMs(): number {
    return this.#behindMs;
  }
}
