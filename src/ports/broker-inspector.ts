/**
 * Read-only questions operations ask a broker (O1–O5): what a partition holds between two offsets, where
 * a point in time falls, and how far a consumer group has committed. Kafka and the embedded table log
 * both answer them.
 */
export interface PartitionWatermarks {
  partition: number;
  /** Lowest offset still held (records below it were deleted by retention or deleteRecords). */
  low: bigint;
  /** Next offset to be written. */
  high: bigint;
}

export interface PartitionRange {
  topic: string;
  partition: number;
  from: bigint;
  /** Exclusive. */
  to: bigint;
}

/** A record read back, with its headers decoded as UTF-8. */
export interface BrokerRecord {
  topic: string;
  partition: number;
  offset: bigint;
  /** Milliseconds since the epoch (the producer's create time on Kafka). */
  timestamp: number;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
}

/** Filled in by `read`: ranges it could not finish (records deleted under it, or no progress for too long). */
export interface ReadStats {
  records: number;
  incomplete: Array<{ topic: string; partition: number; reached: bigint; to: bigint; reason: string }>;
}

export interface CommittedOffset {
  topic: string;
  partition: number;
  /** Next offset the group will read. */
  offset: bigint;
}

export interface BrokerInspector {
  listTopics(): Promise<string[]>;
  /** Watermarks per partition; undefined when the topic does not exist. */
  watermarks(topic: string): Promise<PartitionWatermarks[] | undefined>;
  /** Per partition, the first offset whose timestamp is at or after `atMs`; the high watermark when none is. */
  offsetsForTime(topic: string, atMs: number): Promise<Array<{ partition: number; offset: bigint }>>;
  /**
   * Streams the records of the ranges, in offset order within a partition, holding only a bounded batch in
   * memory. Ranges it cannot finish are reported in `stats.incomplete`, never silently dropped.
   */
  read(ranges: PartitionRange[], stats?: ReadStats): AsyncIterable<BrokerRecord>;
  /** The group's committed offsets, for every topic it committed on. */
  committedOffsets(groupId: string): Promise<CommittedOffset[]>;
}

/** The few topic and group changes the backlog tools make (O4). */
export interface TopicAdmin {
  /** Creates the topic with the durability profile when missing; returns its partition count. */
  ensureTopic(topic: string, partitions: number): Promise<{ created: boolean; partitions: number }>;
  /** Raises the partition count to `total` (never lowers it). */
  createPartitions(topic: string, total: number): Promise<void>;
  /** Moves a group's committed offsets; the broker refuses while the group has live members. */
  alterGroupOffsets(groupId: string, offsets: CommittedOffset[]): Promise<void>;
}
