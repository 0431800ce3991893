/** One message as the fault plan and the transport saw it: its key, when it was published, its planned retries. */
export interface PlannedWait {
  key: string;
  /** When the transport acknowledged it (epoch ms, the database's clock). */
  sentAtMs: number;
  /** Retries the fault plan makes it wait for (0 for none, and for a permanent failure). */
  retries: number;
}

/**
 * The earliest moment the last message could settle if nothing but the workload's own planned failures
 * cost time: each key's messages in order (blocking retries hold the key), each starting when it was
 * published or when the one before it finished, whichever is later, and waiting `retryDelayMs` per
 * planned retry; handling itself, polling, kills and rebalances cost nothing. `waits` must be in each
 * key's order. Returns epoch ms (undefined for no messages).
 *
 * The demo's settle time minus this is what the run cost beyond its own deliberate retries (throughput,
 * recovery after kills): the figure to compare between two retry delays, since the floor itself grows with
 * the delay (a user whose prizes fail 9 times in all waits 18 s at 2 s, 2.25 s at 250 ms).
 */
export function retryFloor(waits: Iterable<PlannedWait>, retryDelayMs: number): number | undefined {
  const keyDone = new Map<string, number>();
  let last: number | undefined;
  for (const w of waits) {
    const start = Math.max(w.sentAtMs, keyDone.get(w.key) ?? Number.NEGATIVE_INFINITY);
    const done = start + w.retries * retryDelayMs;
    keyDone.set(w.key, done);
    if (last === undefined || done > last) last = done;
  }
  return last;
}
