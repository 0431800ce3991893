/** Group timings for tests: rebalances and lease expiry in milliseconds instead of the production seconds. */
export const FAST_GROUP = { heartbeatIntervalMs: 100, sessionTimeoutMs: 1_000, pollIntervalMs: 250 } as const;
