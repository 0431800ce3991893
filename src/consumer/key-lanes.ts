import { LaneTicket } from './lane-ticket.ts';

/**
 * Runs tasks concurrently across lanes and in order within a lane (C3: one lane per business key), with at
 * most `concurrency` tasks holding a slot at once. A task gives its slot back while it waits (retry delays,
 * due times, its turn), so a waiting key never starves the others; and a task can ask to run alone
 * (`exclusive`), which the poison guard uses to find out whether a suspect record is the one that crashes
 * the process.
 *
 * With `depth` above 1, up to that many tasks of one lane are in progress at once, each with a ticket
 * (lane-ticket.ts) that keeps their effects in lane order: this is what lets one hot key's consecutive
 * messages share a transaction. With depth 1 a lane's tasks run strictly one after another.
 */
export interface LaneControl {
  /** Waits `ms` without holding a slot. Resolves false when `signal` aborted the wait early. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  /** Waits for `until` without holding a slot. Resolves false when `signal` aborted the wait early. */
  wait(until: Promise<unknown>, signal?: AbortSignal): Promise<boolean>;
  /** Runs `fn` while no other task of this process holds a slot. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** This task's place in its lane. */
  readonly ticket: LaneTicket;
}

export type LaneTask = (control: LaneControl) => Promise<void>;

interface Lane {
  queue: LaneTask[];
  running: number;
  last: LaneTicket | undefined;
}

export class KeyLanes {
  readonly #semaphore: FifoSemaphore;
  readonly #concurrency: number;
  readonly #depth: number;
  readonly #lanes = new Map<string, Lane>();
  readonly #onError: (error: unknown) => void;
  #idleWaiters: Array<() => void> = [];

  /** `onError` receives what a task throws; tasks are expected to handle their own failures. */
  constructor(concurrency: number, onError: (error: unknown) => void = () => {}, options: { depth?: number } = {}) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer');
    const depth = options.depth ?? 1;
    if (!Number.isSafeInteger(depth) || depth < 1) throw new RangeError('depth must be a positive integer');
    this.#concurrency = concurrency;
    this.#depth = depth;
    this.#semaphore = new FifoSemaphore(concurrency);
    this.#onError = onError;
  }

  push(name: string, task: LaneTask): void {
    let lane = this.#lanes.get(name);
    if (!lane) {
      lane = { queue: [], running: 0, last: undefined };
      this.#lanes.set(name, lane);
    }
    lane.queue.push(task);
    this.#pump(name, lane);
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

  #pump(name: string, lane: Lane): void {
    while (lane.running < this.#depth && lane.queue.length > 0) {
      const task = lane.queue.shift() as LaneTask;
      const ticket = new LaneTicket(lane.last);
      lane.last = ticket;
      lane.running++;
      void this.#run(name, lane, task, ticket);
    }
  }

  async #run(name: string, lane: Lane, task: LaneTask, ticket: LaneTicket): Promise<void> {
    await this.#semaphore.acquire(1);
    const slot = { held: true, exclusive: false };
    try {
      await task(this.#control(slot, ticket));
    } catch (error) {
      this.#onError(error);
    } finally {
      if (slot.held) this.#semaphore.release(1);
      ticket.set('settled');
      lane.running--;
    }
    this.#pump(name, lane);
    // No await between the pump and here, so a concurrent push cannot be lost.
    if (lane.running > 0 || this.#lanes.get(name) !== lane) return;
    this.#lanes.delete(name);
    if (this.#lanes.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  #control(slot: { held: boolean; exclusive: boolean }, ticket: LaneTicket): LaneControl {
    const wait = async (until: Promise<unknown>, signal?: AbortSignal): Promise<boolean> => {
      const aborted = signal ? untilAborted(signal) : undefined;
      const done = Promise.race([until.then(() => true), ...(aborted ? [aborted.promise] : [])]);
      try {
        // An exclusive run keeps every slot while it waits: were it to hand one back, it would queue for
        // it again behind a second exclusive request that needs that very slot, and both would wait forever.
        // (It also keeps the suspect alone in the process, which is what exclusivity is for.)
        if (slot.exclusive) return await done;
        slot.held = false;
        this.#semaphore.release(1);
        try {
          return await done;
        } finally {
          await this.#semaphore.acquire(1);
          slot.held = true;
        }
      } finally {
        aborted?.dispose();
      }
    };
    return {
      ticket,
      wait,
      sleep: (ms, signal) => {
        if (signal?.aborted) return Promise.resolve(false);
        let timer: NodeJS.Timeout | undefined;
        const elapsed = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, ms);
        });
        return wait(elapsed, signal).finally(() => clearTimeout(timer));
      },
      exclusive: async (fn) => {
        // First the lane's earlier tasks must be done, waited for holding no slot: a run that holds every
        // slot and then waits for a predecessor deadlocks the process when that predecessor, back from a
        // sleep (an outage backoff, a retry delay), needs a slot to go on.
        for (let previous = ticket.previous; previous; previous = ticket.previous) await wait(previous.changed());
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

/** Callbacks waiting on each signal's abort, behind one listener per signal. */
const abortWaiters = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * A promise that resolves false when `signal` aborts; `dispose` forgets it. One listener per signal fans
 * out to every wait on it: a partition's signal has hundreds of waits at once, and an EventTarget checks
 * each new listener against all those it holds (measured: 5% of the consumer's JavaScript time).
 */
function untilAborted(signal: AbortSignal): { promise: Promise<boolean>; dispose: () => void } {
  let onAbort: () => void = () => {};
  const promise = new Promise<boolean>((resolve) => {
    onAbort = () => resolve(false);
  });
  if (signal.aborted) {
    onAbort();
    return { promise, dispose: () => {} };
  }
  let waiters = abortWaiters.get(signal);
  if (!waiters) {
    const set = new Set<() => void>();
    waiters = set;
    abortWaiters.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        abortWaiters.delete(signal);
        for (const wake of set) wake();
        set.clear();
      },
      { once: true },
    );
  }
  const entry = onAbort;
  waiters.add(entry);
  const own = waiters;
  return { promise, dispose: () => own.delete(entry) };
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
