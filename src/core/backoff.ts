/** Exponential backoff with full jitter over [base·2^(n-1)/2, base·2^(n-1)], capped. `attempt` is 1-based. */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** 0 = no jitter, 1 = up to half the delay removed at random. */
  jitter: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, attempt - 1));
  const jitter = Math.min(1, Math.max(0, options.jitter));
  return Math.round(exp * (1 - (jitter * random()) / 2));
}
