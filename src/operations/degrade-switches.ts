import { ZerolossError, errorSummary } from '../core/errors.ts';
import type { SwitchReader } from '../consumer/middleware/defer.ts';
import type { DegradeStore, DegradeSwitch } from '../ports/backlog-store.ts';
import { type Actor, actorOf } from './intervention.ts';

/**
 * Degrade switches (O10): named, durable on/off flags for non-core work — an optional risk check, verbose
 * logging, a non-core message type — that a person (`zeroloss backlog degrade`) or the backlog policy
 * turns on at peak and off again. Every change is audited with who, why and what caused it.
 */

const NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;

export function validateSwitchName(name: string): string {
  if (!NAME.test(name)) {
    throw new ZerolossError('ZL_INVALID_CONFIG', `switch name ${JSON.stringify(name)}: use lower-case letters, digits, '.', '_' and '-'`);
  }
  return name;
}

/** Turns a switch on or off, audited (action backlog.degrade.on|off, subject switch:<name>). */
export async function setDegrade(
  store: Pick<DegradeStore, 'setSwitch'>,
  name: string,
  on: boolean,
  who: Actor = {},
  details?: Record<string, unknown>,
): Promise<{ switch: DegradeSwitch; changed: boolean }> {
  return store.setSwitch(validateSwitchName(name), on, actorOf(who), who.reason, details);
}

export type { SwitchReader };

/**
 * The switches as last read from the database, refreshed every `refreshMs` (default 5 s) in the background:
 * `degraded(name)` is a map lookup, so a handler may ask for every message. A change therefore takes effect
 * within one refresh. When a refresh fails the last values stay (reported to `onError`); before the first
 * read every switch is off — `start()` awaits that read.
 *
 *   const switches = new DegradeSwitches(backlogStore);
 *   await switches.start();
 *   consumer.handle('order.placed', async (m, ctx) => {
 *     if (!switches.degraded('risk-check')) await riskCheck(m.payload);   // optional at peak
 *     await placeOrder(ctx.tx, m.payload);
 *   });
 */
export class DegradeSwitches implements SwitchReader {
  readonly #store: Pick<DegradeStore, 'switches'>;
  readonly #refreshMs: number;
  readonly #onError: (error: Error) => void;
  #on = new Set<string>();
  #all: DegradeSwitch[] = [];
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(store: Pick<DegradeStore, 'switches'>, options: { refreshMs?: number; onError?: (error: Error) => void } = {}) {
    this.#store = store;
    this.#refreshMs = options.refreshMs ?? 5_000;
    if (!Number.isInteger(this.#refreshMs) || this.#refreshMs < 10) {
      throw new ZerolossError('ZL_INVALID_CONFIG', 'refreshMs must be an integer of at least 10');
    }
    this.#onError = options.onError ?? (() => {});
  }

  degraded(name: string): boolean {
    return this.#on.has(name);
  }

  /** The switches as last read. */
  get switches(): readonly DegradeSwitch[] {
    return this.#all;
  }

  /** Reads the switches now; concurrent calls share one read. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#store
      .switches()
      .then((all) => {
        this.#all = all;
        this.#on = new Set(all.filter((s) => s.on).map((s) => s.name));
      })
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  /** Reads once, then keeps refreshing until `stop()`. The timer does not hold the process open. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer ??= setInterval(() => {
      this.refresh().catch((e: unknown) =>
        this.#onError(new ZerolossError('ZL_STORE_UNAVAILABLE', `degrade switches not refreshed: ${errorSummary(e)}`, { cause: e })),
      );
    }, this.#refreshMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
