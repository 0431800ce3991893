/**
 * The optional fast path in front of the inbox (C4): a cache of recently applied keys and a short lock
 * against concurrent copies. It is an optimisation only. Every method answers `undefined` (or does
 * nothing) when the cache is unreachable, and a wrong or missing answer costs speed, never correctness:
 * the inbox row written with the effect decides.
 */
export interface InboxCache {
  /** true: applied recently (skip); false: not known here; undefined: cache unavailable. */
  has(groupId: string, idempotencyKey: string): Promise<boolean | undefined>;
  /** Remembers an applied key. Best effort; never throws. */
  add(groupId: string, idempotencyKey: string): Promise<void>;
  /** A token when the lock was taken, null when another holder has it, undefined when the cache is unavailable. */
  lock(groupId: string, idempotencyKey: string, ttlMs: number): Promise<string | null | undefined>;
  /** Releases the lock if `token` still holds it. Best effort; never throws. */
  unlock(groupId: string, idempotencyKey: string, token: string): Promise<void>;
  close(): Promise<void>;
}
