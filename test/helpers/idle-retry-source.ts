import type { RelaySource } from '../../src/ports/outbox-store.ts';

/** A WAL ledger's polling path with nothing to claim, for relay tests whose rows all go by the stream. */
export function idleRetrySource(): RelaySource {
  return {
    name: 'fake (wal retries)',
    wakeChannel: undefined,
    claim: async () => [],
    markSent: async () => {},
    markFailed: async () => [],
    backlog: async () => ({ pending: 0, failed: 0, parked: 0, oldestPendingAgeMs: 0 }) as never,
    anyDue: async () => ({ due: false }),
  };
}
