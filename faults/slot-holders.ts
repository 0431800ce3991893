/**
 * Which WAL relay reads the slot, from what each relay process says: `zeroloss relay --mode wal` logs
 * "reading the slot" when it takes it and "standing by" when another holds it (WalRelay's 'slot' event).
 * Used by the WAL nemeses to SIGKILL or SIGSTOP the holder rather than a random relay, and to time a
 * takeover: from the holder's death (or freeze) to another relay saying it reads the slot.
 */
export type SlotState = 'streaming' | 'standby' | 'starting';

export class SlotHolders {
  readonly #state = new Map<string, { state: SlotState; at: number }>();
  readonly #waiters = new Set<() => void>();
  /** Each takeover's time, ms: holder gone to another relay streaming. */
  readonly takeoversMs: number[] = [];

  /** ProcessGroup's onStart. */
  readonly started = (name: string): void => {
    this.#set(name, 'starting');
  };

  /** ProcessGroup's onLine. */
  readonly line = (name: string, line: string): void => {
    if (line.includes('reading the slot')) this.#set(name, 'streaming');
    else if (line.includes('standing by')) this.#set(name, 'standby');
  };

  #set(name: string, state: SlotState): void {
    this.#state.set(name, { state, at: Date.now() });
    for (const wake of [...this.#waiters]) wake();
  }

  /** Forget what a member said (it was killed or frozen: it reads nothing now). */
  gone(name: string): void {
    this.#set(name, 'starting');
  }

  /** Names in `state`, with when they said so. */
  in(state: SlotState): Array<{ name: string; at: number }> {
    return [...this.#state].filter(([, s]) => s.state === state).map(([name, s]) => ({ name, at: s.at }));
  }

  /** Resolves with what `probe` returns once it returns something, or rejects after `timeoutMs`. */
  async until<T>(probe: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs / 1000} s: ${JSON.stringify(Object.fromEntries(this.#state))}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  /** The relay reading the slot, once one does and (with `standby`) another stands by to take over. */
  holder(timeoutMs: number, options: { standby: boolean }): Promise<string> {
    return this.until(
      () => {
        const holder = this.in('streaming')[0]?.name;
        if (holder === undefined) return undefined;
        if (options.standby && !this.in('standby').some((s) => s.name !== holder)) return undefined;
        return holder;
      },
      options.standby ? 'slot holder with a standby' : 'slot holder',
      timeoutMs,
    );
  }

  /** Waits for a relay other than `former` (or `former` after a restart) to read the slot since `since`; returns the ms it took. */
  async takeover(since: number, timeoutMs: number): Promise<{ name: string; ms: number }> {
    const next = await this.until(() => this.in('streaming').find((s) => s.at >= since), 'takeover of the slot', timeoutMs);
    const ms = next.at - since;
    this.takeoversMs.push(ms);
    return { name: next.name, ms };
  }
}
