import type { RelaySource } from './outbox-store.ts';
import type { WalLedger, WalStream } from './wal-stream.ts';

/** One shard of the outbox as the server sees it now (docs/wal-relay.md, Shards). */
export interface WalShard {
  shard: number;
  /** The shard count fixed when the shards were created; the same in every row. */
  shards: number;
  slot: string;
  publication: string;
  /** Whether the slot exists (a dropped or lost one must be created again). */
  exists: boolean;
  /** The server removed WAL the slot needs (max_slot_wal_keep_size): it must be created again. */
  lost: boolean;
  /** A relay reads the slot now (the server admits one reader per slot). */
  active: boolean;
  /** The reading relay's instance id (its replication connection's application_name), when one reads it. */
  holder: string | null;
}

/**
 * The outbox split into shards by key hash, each streamed through a slot of its own, and the membership of
 * the relays that share them. Each shard's stream and ledger behave as the single slot's (`WalStream`).
 */
export interface WalShardSet {
  /** The shards in shard order; empty when none were created. */
  list(): Promise<WalShard[]>;
  /** The stream and ledger of one shard, read by relay instance `holder`. */
  open(shard: WalShard, holder: string): { stream: WalStream; ledger: WalLedger };
  /**
   * Says `member` is alive; resolves to the server's time and every live member (itself included) with when
   * it was last seen, both in ms since the epoch on the server's clock (the members' clocks never matter).
   */
  heartbeat(member: string, timeoutMs: number): Promise<{ now: number; members: Map<string, number> }>;
  /** Leaves the membership at once (a clean stop), so the others rebalance without waiting for the timeout. */
  leave(member: string): Promise<void>;
  /** The outbox as a polling source that claims failed rows only: one for every shard. */
  readonly retrySource: RelaySource;
}
