import type { IncomingRecord, OutgoingRecord } from '../core/envelope.ts';
import type { ZerolossError } from '../core/errors.ts';
import type { Database, SqlExecutor } from './sql-executor.ts';

export type PublishOutcome =
  | { ok: true; partition?: number; offset?: bigint }
  /** `attempted: false` means the record was held back (an earlier record of its key failed) and never sent. */
  | { ok: false; error: ZerolossError; attempted: boolean };

/**
 * Sends records and reports, per record, what the broker said. Records of one key are sent in array
 * order; once one fails, later records of that key in the same call are not attempted.
 */
export interface Publisher {
  publish(records: OutgoingRecord[]): Promise<PublishOutcome[]>;
  close(): Promise<void>;
  /**
   * Only a transport that lives in a database (the table log): the database it writes to, and a publish
   * that runs inside a transaction of that database, so a write there and the records commit together.
   */
  readonly database?: Database;
  publishWithin?(tx: SqlExecutor, records: OutgoingRecord[]): Promise<PublishOutcome[]>;
}

/** A batch of records from one partition, in offset order. */
export interface ReceivedBatch {
  topic: string;
  partition: number;
  records: IncomingRecord[];
}

/**
 * Delivers records of a consumer group. Offsets are committed only by an explicit `commit`, never
 * automatically; `commit` takes the next offset to read, per partition.
 */
export interface Subscriber {
  subscribe(options: SubscribeOptions): Promise<Subscription>;
}

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  onRecords: (batch: ReceivedBatch) => void;
  /** Called before partitions are taken away, so in-flight work can finish or be abandoned first. */
  onRevoke?: (partitions: Array<{ topic: string; partition: number }>) => Promise<void>;
  onAssign?: (partitions: Array<{ topic: string; partition: number }>) => void;
  /**
   * Background trouble of this subscription (a lost connection, refused credentials, a throwing callback):
   * reported, never thrown; the subscription keeps trying. Subscribers also emit it as their 'error' event.
   */
  onError?: (error: Error) => void;
  /**
   * Where to start each assigned partition instead of the group's committed offset: positions the consumer
   * keeps in its own database, committed with the effects (`offsetStore: 'database'`). Asked on every
   * assignment; a partition it does not return starts from the committed offset as usual. A transport
   * without per-partition offsets rejects it at `subscribe` with ZL_INVALID_CONFIG.
   */
  startOffsets?: (
    partitions: Array<{ topic: string; partition: number }>,
  ) => Promise<Array<{ topic: string; partition: number; offset: bigint }>>;
}

export interface Subscription {
  commit(offsets: Array<{ topic: string; partition: number; offset: bigint }>): Promise<void>;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
  /** Optional: records after the committed offset, per assigned partition (consumer lag, O1/O4). */
  lag?(): Promise<Array<{ topic: string; partition: number; lag: bigint }>>;
}
