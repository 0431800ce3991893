import type { ClaimedRow, DueCheck, FailedOutcome, RelaySource, SentOutcome } from '../../src/ports/outbox-store.ts';

/**
 * Wraps a relay source to time each round from the start of its claim to the end of its markSent, which
 * is the latency every message of that round sees inside the relay. Counts what was marked sent.
 */
export class TimedSource implements RelaySource {
  readonly #inner: RelaySource;
  readonly #started = new Map<string, number>();
  readonly latenciesMs: number[] = [];
  sent = 0;
  /**
   * The inner source's cheap check, when it has one: without it the relay takes the source for one it cannot
   * poll cheaply and runs another loop (no check before a claim, no back-off after empty claims), so the
   * benchmark would time a relay no user runs.
   */
  readonly anyDue?: () => Promise<DueCheck>;

  constructor(inner: RelaySource) {
    this.#inner = inner;
    const anyDue = inner.anyDue?.bind(inner);
    if (anyDue) this.anyDue = anyDue;
  }

  get name(): string {
    return this.#inner.name;
  }

  get wakeChannel(): string | undefined {
    return this.#inner.wakeChannel;
  }

  async claim(owner: string, limit: number, leaseMs: number): Promise<ClaimedRow[]> {
    const t0 = performance.now();
    const rows = await this.#inner.claim(owner, limit, leaseMs);
    if (rows.length > 0) this.#started.set((rows[0] as ClaimedRow).ref, t0);
    return rows;
  }

  async markSent(owner: string, sent: SentOutcome[]): Promise<void> {
    await this.#inner.markSent(owner, sent);
    this.sent += sent.length;
    const first = sent[0]?.ref;
    const t0 = first === undefined ? undefined : this.#started.get(first);
    if (first !== undefined && t0 !== undefined) {
      this.#started.delete(first);
      const ms = performance.now() - t0;
      for (let i = 0; i < sent.length; i++) this.latenciesMs.push(ms);
    }
  }

  markFailed(owner: string, failed: FailedOutcome[]): Promise<string[]> {
    return this.#inner.markFailed(owner, failed);
  }

  backlog() {
    return this.#inner.backlog();
  }
}
