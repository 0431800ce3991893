/**
 * Runs tasks concurrently across lanes and serially within a lane (C3: one lane per business key), with at
 * most `concurrency` tasks holding a slot at once. A task gives its slot back while it waits (retry delays,
 * due times), so a waiting key never starves the others; and a task can ask to run alone (`exclusive`),
 * which the poison guard uses to find out whether a suspect record is the one that crashes the process.
 */
export interface LaneControl {
  /** Waits `ms` without holding a slot. Resolves false when `signal` aborted the wait early. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  /** Runs `fn` while no other task of this process holds a slot. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

export type LaneTask = (control: LaneControl) => Promise<void>;

export class KeyLanes {
  readonly #semaphore: FifoSemaphore;
  readonly #concurrency: number;
  readonly #lanes = new Map<string, LaneTask[]>();
  readonly #onError: (error: unknown) => void;
  #idleWaiters: Array<() => void> = [];

  /** `onError` receives what a task throws; tasks are expected to handle their own failures. */
  constructor(concurrency: number, onError: (error: unknown) => void = () => {}) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');
    this.#concurrency = concurrency;
    this.#semaphore = new FifoSemaphore(concurrency);
    this.#onError = onError;
  }

  push(lane: string, task: LaneTask): void {
    const queue = this.#lanes.get(lane);
    if (queue) {
      queue.push(task);
      return;
    }
    this.#lanes.set(lane, [task]);
    void this.#drain(lane);
  }

  /** Lanes with work queued or running. */
  get activeLanes(): number {
    return this.#lanes.size;
  }

  /** Resolves when no lane has work left. */
  idle(): Promise<void> {
    if (this.#lanes.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async #drain(lane: string): Promise<void> {
    const queue = this.#lanes.get(lane) as LaneTask[];
    while (queue.length > 0) {
      const task = queue[0] as LaneTask;
      await this.#semaphore.acquire(1);
      const slot = { held: true, exclusive: false };
      try {
        await task(this.#control(slot));
      } catch (error) {
        this.#onError(error);
      } finally {
        if (slot.held) this.#semaphore.release(1);
        queue.shift();
      }
    }
    // No await between the loop's last check and here, so a concurrent push cannot be lost.
    this.#lanes.delete(lane);
    if (this.#lanes.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  #control(slot: { held: boolean; exclusive: boolean }): LaneControl {
    return {
      sleep: async (ms, signal) => {
        // An exclusive run keeps every slot while it waits: were it to hand one back, it would queue for
        // it again behind a second exclusive request that needs that very slot, and both would wait forever.
        // (It also keeps the suspect alone in the process, which is what exclusivity is for.)
        if (slot.exclusive) return abortableDelay(ms, signal);
        slot.held = false;
        this.#semaphore.release(1);
        try {
          return await abortableDelay(ms, signal);
        } finally {
          await this.#semaphore.acquire(1);
          slot.held = true;
        }
      },
      exclusive: async (fn) => {
        // Give our own slot back first, then wait for all of them: two suspects asking at once queue one
        // behind the other instead of each holding a slot the other needs.
        slot.held = false;
        this.#semaphore.release(1);
        await this.#semaphore.acquire(this.#concurrency);
        slot.exclusive = true;
        try {
          return await fn();
        } finally {
          slot.exclusive = false;
          this.#semaphore.release(this.#concurrency - 1);
          slot.held = true;
        }
      },
    };
  }
}

/**
 * Counting semaphore served strictly in arrival order, so a request for every permit (exclusive) is not
 * overtaken forever by single-permit requests.
 */
export class FifoSemaphore {
  #available: number;
  readonly #waiters: Array<{ weight: number; resolve: () => void }> = [];

  constructor(permits: number) {
    this.#available = permits;
  }

  acquire(weight: number): Promise<void> {
    if (this.#waiters.length === 0 && this.#available >= weight) {
      this.#available -= weight;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push({ weight, resolve }));
  }

  release(weight: number): void {
    this.#available += weight;
    while (this.#waiters.length > 0 && (this.#waiters[0] as { weight: number }).weight <= this.#available) {
      const next = this.#waiters.shift() as { weight: number; resolve: () => void };
      this.#available -= next.weight;
      next.resolve();
    }
  }

  get available(): number {
    return this.#available;
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
