/**
 * `zeroloss/guards`: the last guards of order and idempotency, for handlers to use in their effect
 * transaction (`ctx.tx`): a version-column guarded update, the wide table for state-change messages, the
 * error that holds an early message for its predecessor, and the bounded business lock with its second
 * idempotency check. Postgres (and PGlite) SQL; no driver is loaded.
 */
export { versionGuard, type VersionGuard, type VersionGuardOptions, type GuardedUpdate } from '../consumer/guards/version-guard.ts';
export { stateColumns, type StateColumns, type StateColumnsOptions, type StateArrival } from '../consumer/guards/state-columns.ts';
export { onceUnderLock, type OnceUnderLockOptions, type OnceUnderLockResult } from '../consumer/guards/once-under-lock.ts';
export { StaleVersionError, NotYetError, HoldExpiredError, LockBusyError } from '../consumer/guards/guard-errors.ts';
export type { HoldPolicy, HoldPolicyInput } from '../consumer/guards/hold-policy.ts';
