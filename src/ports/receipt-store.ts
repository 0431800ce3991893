/**
 * The producing service's record of what its consumers applied (two-way confirmation): filled from the
 * receipts they send on the control channel, read by trace, status and `confirmations`. Advisory: a consumer's
 * inbox is the authority on whether an effect was applied; a receipt only reports it to the producer.
 */
export interface ReceiptInput {
  messageId: string;
  group: string;
  /** When the group reported it applied (its receipt batch's time, at most one batch interval after the commit). */
  appliedAt: Date;
}

export interface GroupReceipt {
  group: string;
  appliedAt: Date;
  /** When the producer's listener stored the receipt. */
  receivedAt: Date;
}

export interface MessageConfirmation {
  messageId: string;
  topic: string;
  /** Outbox state: 0 pending, 1 sent, 2 failed, 3 parked (a state-column source's message: the same, from its bookkeeping). */
  state: number;
  sentAt: Date | null;
  sentPartition: number | null;
  sentOffset: bigint | null;
  /** Groups that reported applying it, by name. */
  applied: GroupReceipt[];
  /** Groups that ever confirmed a message of this topic: those expected to apply this one too. */
  expected: string[];
}

export interface GroupConfirmationSummary {
  group: string;
  /** Topics the group has confirmed messages of (null: none known, every topic counts). */
  topics: string[] | null;
  /** The newest receipt stored for the group, over all topics. */
  lastReceiptAt: Date | null;
  /** Outbox messages of those topics committed in the window and sent at least `unconfirmedAfterMs` ago. */
  sent: number;
  confirmed: number;
  /** The oldest of them without a receipt from the group. */
  oldestUnconfirmed: { messageId: string; topic: string; createdAt: Date; sentAt: Date } | undefined;
}

export interface ReceiptStore {
  /**
   * Stores receipts of messages in this outbox or of this service's state-column sources (others are another
   * producer's, or gone by retention, and are dropped); a repeated receipt keeps the first. Returns how many
   * were new.
   */
  recordReceipts(receipts: ReceiptInput[]): Promise<number>;
  /** The outbox or source rows of `ids` (ids in neither are left out) with the groups that applied each. */
  confirmations(ids: string[]): Promise<MessageConfirmation[]>;
  /** Groups that sent receipts since `seenWithinMs` ago, by name. */
  receiptGroups(seenWithinMs: number): Promise<string[]>;
  groupConfirmations(group: string, windowMs: number, unconfirmedAfterMs: number): Promise<GroupConfirmationSummary>;
}
