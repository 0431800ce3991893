import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Subscriber settings every group transport with its own membership takes, with the same meaning and
 * defaults: spread into the transport's schema, then refine it with `sessionCoversHeartbeats`.
 */
export const groupMemberConfigFields = {
  /** Prefix of member ids (a random suffix keeps each subscription unique); default host-pid. */
  clientId: z.string().min(1).max(100).optional(),
  /** How often a member renews its session and the assignment is recomputed. */
  heartbeatIntervalMs: z.number().int().positive().default(1_000),
  /** A member not heard from for this long is dead: the others take its partitions. */
  sessionTimeoutMs: z.number().int().positive().default(10_000),
  /** Most records in one onRecords batch (one partition). */
  maxBatchRecords: z.number().int().positive().default(500),
  /** Where a group starts on a partition it has never committed: the oldest retained record, or new ones only. */
  startFrom: z.enum(['earliest', 'latest']).default('earliest'),
  /** How long onRevoke may take before the partition is handed back anyway. */
  rebalanceTimeoutMs: z.number().int().positive().default(60_000),
};

/** A session shorter than two heartbeats would expire between two renewals on an ordinary delay. */
export function sessionCoversHeartbeats(c: { sessionTimeoutMs: number; heartbeatIntervalMs: number }): boolean {
  return c.sessionTimeoutMs >= 2 * c.heartbeatIntervalMs;
}

export const SESSION_TIMEOUT_RULE = { message: 'must be at least twice heartbeatIntervalMs', path: ['sessionTimeoutMs'] };

/** A member id unique per subscription: the client id (default host-pid) and a random suffix. */
export function newMemberId(clientId: string | undefined): string {
  return `${clientId ?? `${hostname()}-${process.pid}`}-${randomBytes(4).toString('hex')}`;
}
