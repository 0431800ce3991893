import { z } from 'zod';

/** The WAL relay's own settings (docs/wal-relay.md); its polling path takes the relay's. */
export const walRelayConfigSchema = z
  .object({
    /** Rows per publish: whole transactions, and a larger transaction in parts of this size. */
    walBatchSize: z.number().int().positive().default(2_000),
    /** Decoded rows waiting to be sent before the socket is paused. */
    maxBufferedRows: z.number().int().positive().default(20_000),
    /** How often a standby tries to take the slot. */
    standbyRetryMs: z.number().int().positive().default(1_000),
    /** Sends of a record retried in place (retryable, not an outage) before it goes to the polling path. */
    inPlaceAttempts: z.number().int().positive().default(3),
    /**
     * Lanes of publishes: a batch's rows are split by key into this many groups, each published by its
     * lane. A key lives in one lane, which publishes its parts batch after batch, so the key's order and
     * its hold-back hold; lanes do not wait for each other.
     */
    publishConcurrency: z.number().int().positive().max(16).default(2),
    /**
     * Batches taken from the stream and not yet recorded and confirmed: while one is recorded, or a slow lane
     * finishes its part of it, the other lanes publish the next ones. Recording and confirming stay in order.
     */
    batchesInFlight: z.number().int().positive().max(16).default(3),
    /** How often, between batches, keys whose failed rows the polling path has sent rejoin the stream. */
    heldKeysRefreshMs: z.number().int().positive().default(1_000),
  })
  .strict();

export type WalRelayConfig = z.input<typeof walRelayConfigSchema>;

export interface WalRelayEvents {
  error: [Error];
  parked: [{ source: string; messageIds: string[] }];
  /**
   * This instance took the slot ('streaming') or stands by: another instance reads it, it is being created,
   * or its creation stopped before its hand-over (`reason` says which, and what to do).
   */
  slot: [{ slot: string; state: 'streaming' | 'standby'; reason?: string }];
  batch: [{ rows: number; sent: number; resent: number; failed: number; heldBack: number; endLsn: string | undefined }];
}
