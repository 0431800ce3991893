import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { ZerolossError } from './errors.ts';

/**
 * Snowflake-style 64-bit ids: 41 bits of milliseconds since EPOCH, 10 bits of worker id, 12 bits of
 * sequence. Rendered as a decimal string because a JS number cannot hold 64 bits exactly.
 *
 * Nothing in the id is random: two generators with one worker id mint the same ids in any millisecond
 * both are active, so the worker id must be unique among all generators whose messages can reach the same
 * consumers (docs/ids.md). The outbox's default is UUIDv7 for that reason.
 *
 * Ids from one generator are strictly increasing. When the clock moves backwards the generator either
 * waits until it has caught up (bounded by maxBackwardMs) or throws, so it never hands out an id that
 * may collide with one already issued.
 */
export const SNOWFLAKE_EPOCH_MS = Date.UTC(2024, 0, 1);
const WORKER_BITS = 10n;
const SEQUENCE_BITS = 12n;
const MAX_WORKER = (1 << Number(WORKER_BITS)) - 1;
const MAX_SEQUENCE = (1 << Number(SEQUENCE_BITS)) - 1;

export type ClockBackwardPolicy = 'wait' | 'error';

export interface SnowflakeOptions {
  workerId: number;
  onClockBackward?: ClockBackwardPolicy;
  /** Largest backward jump that 'wait' will sit out; a bigger one throws even under 'wait'. */
  maxBackwardMs?: number;
  clock?: Clock;
  /** Busy-wait hook for tests; the default spins on the clock, which is fine for the ≤ few ms it lasts. */
  waitUntil?: (ms: number) => void;
}

export class Snowflake {
  readonly #workerId: bigint;
  readonly #policy: ClockBackwardPolicy;
  readonly #maxBackwardMs: number;
  readonly #clock: Clock;
  readonly #waitUntil: (ms: number) => void;
  #lastMs = -1;
  #sequence = 0;

  constructor(options: SnowflakeOptions) {
    if (!Number.isInteger(options.workerId) || options.workerId < 0 || options.workerId > MAX_WORKER) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `snowflake workerId must be an integer in 0..${MAX_WORKER}`, {
        details: { workerId: options.workerId },
      });
    }
    this.#workerId = BigInt(options.workerId);
    this.#policy = options.onClockBackward ?? 'wait';
    this.#maxBackwardMs = options.maxBackwardMs ?? 5_000;
    this.#clock = options.clock ?? systemClock;
    this.#waitUntil =
      options.waitUntil ??
      ((ms) => {
        while (this.#clock.now() < ms) {
          /* spin: the wait is at most one millisecond or a bounded clock step */
        }
      });
  }

  /**
   * How long `next()` would now sit out a backward clock step: 0 when the clock is not behind, or when it
   * would throw instead (policy 'error', or a step beyond maxBackwardMs). A caller that can wait
   * asynchronously (enqueue) waits this long first, so `next()` does not spin the event loop through it.
   */
  pendingWaitMs(): number {
    const behind = this.#lastMs - this.#clock.now();
    return behind > 0 && this.#sitsOut(behind) ? behind : 0;
  }

  /** Whether a backward step of `behind` ms is waited out (policy 'wait', within maxBackwardMs) rather than thrown. */
  #sitsOut(behind: number): boolean {
    return this.#policy === 'wait' && behind <= this.#maxBackwardMs;
  }

  next(): string {
    let now = this.#clock.now();
    if (now < this.#lastMs) {
      const behind = this.#lastMs - now;
      if (!this.#sitsOut(behind)) {
        throw new ZerolossError('ZL_CLOCK_MOVED_BACKWARDS', `clock moved backwards by ${behind} ms`, {
          retryable: true,
          details: { behindMs: behind },
        });
      }
      this.#waitUntil(this.#lastMs);
      now = Math.max(this.#clock.now(), this.#lastMs);
    }
    if (now === this.#lastMs) {
      this.#sequence = (this.#sequence + 1) & MAX_SEQUENCE;
      if (this.#sequence === 0) {
        // 4096 ids in one millisecond: move to the next one.
        this.#waitUntil(this.#lastMs + 1);
        now = Math.max(this.#clock.now(), this.#lastMs + 1);
      }
    } else {
      this.#sequence = 0;
    }
    this.#lastMs = now;
    const ts = BigInt(now - SNOWFLAKE_EPOCH_MS);
    return ((ts << (WORKER_BITS + SEQUENCE_BITS)) | (this.#workerId << SEQUENCE_BITS) | BigInt(this.#sequence)).toString();
  }
}

/** The parts of a snowflake id, for tracing and tests. */
export function parseSnowflake(id: string): { timestampMs: number; workerId: number; sequence: number } {
  const value = BigInt(id);
  return {
    timestampMs: Number(value >> (WORKER_BITS + SEQUENCE_BITS)) + SNOWFLAKE_EPOCH_MS,
    workerId: Number((value >> SEQUENCE_BITS) & BigInt(MAX_WORKER)),
    sequence: Number(value & BigInt(MAX_SEQUENCE)),
  };
}
