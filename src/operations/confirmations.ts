import type { GroupConfirmationSummary, MessageConfirmation, ReceiptStore } from '../ports/receipt-store.ts';

export interface Confirmation {
  messageId: string;
  /** False when this outbox has no row for the id (never committed here, or removed by retention). */
  found: boolean;
  topic: string | undefined;
  /** Sent: when, and where the broker acknowledged it (null where the broker gives no position); undefined while unsent. */
  sent: { partition: number | null; offset: string | null; at: string | null } | undefined;
  /** Groups that reported applying it. */
  applied: Array<{ group: string; appliedAt: string; receivedAt: string }>;
  /** Expected groups (given, or those that confirmed any message of its topic) without a receipt for it. */
  notConfirmed: string[];
}

/**
 * Two-way confirmation, per message (O9): did it reach the broker (partition and offset) and which consumer
 * groups applied it, as their receipts reported. `groups` adds groups expected to apply every message; by
 * default a group is expected on a topic once it confirmed any message of it. A missing receipt means "not
 * confirmed", not "not applied": receipts are advisory, the consumer's inbox decides.
 */
export async function confirmations(
  deps: { store: Pick<ReceiptStore, 'confirmations'> },
  ids: string[],
  options: { groups?: string[] } = {},
): Promise<Confirmation[]> {
  const rows = new Map((await deps.store.confirmations([...new Set(ids)])).map((r) => [r.messageId, r]));
  return ids.map((id) => confirmationOf(id, rows.get(id), options.groups ?? []));
}

export function confirmationOf(id: string, row: MessageConfirmation | undefined, groups: string[]): Confirmation {
  if (!row) return { messageId: id, found: false, topic: undefined, sent: undefined, applied: [], notConfirmed: [...groups].sort() };
  const applied = row.applied.map((a) => ({
    group: a.group,
    appliedAt: a.appliedAt.toISOString(),
    receivedAt: a.receivedAt.toISOString(),
  }));
  const done = new Set(applied.map((a) => a.group));
  const expected = [...new Set([...row.expected, ...groups])].sort();
  return {
    messageId: id,
    found: true,
    topic: row.topic,
    sent:
      row.state === 1
        ? { partition: row.sentPartition, offset: row.sentOffset?.toString() ?? null, at: row.sentAt?.toISOString() ?? null }
        : undefined,
    applied,
    notConfirmed: expected.filter((g) => !done.has(g)),
  };
}

export interface ConfirmationStatusOptions {
  /** The groups expected to apply this producer's messages; default those with a receipt in `seenWithinMs`. */
  groups?: string[];
  /** Messages committed this long ago at most are counted. Default 15 min. */
  windowMs?: number;
  /** A message sent less than this ago is not counted yet (its receipt may be on the way). Default 60 s. */
  unconfirmedAfterMs?: number;
  /** Without `groups`: groups whose latest receipt is at most this old. Default 7 days. */
  seenWithinMs?: number;
}

export interface GroupConfirmations {
  group: string;
  /** The topics counted for it: those it confirmed messages of; null when none is known (all topics count). */
  topics: string[] | null;
  lastReceiptAt: string | null;
  sent: number;
  confirmed: number;
  unconfirmed: number;
  oldestUnconfirmed: { messageId: string; topic: string; createdAt: string; sentAt: string; ageMs: number } | undefined;
}

/** Per expected group: of the recently sent messages, how many it confirmed, and the oldest it did not. */
export async function confirmationStatus(
  deps: { store: Pick<ReceiptStore, 'receiptGroups' | 'groupConfirmations'> },
  options: ConfirmationStatusOptions = {},
): Promise<GroupConfirmations[]> {
  const groups = options.groups ?? (await deps.store.receiptGroups(options.seenWithinMs ?? 7 * 86_400_000));
  const now = Date.now();
  const out: GroupConfirmations[] = [];
  for (const group of [...new Set(groups)].sort()) {
    const s: GroupConfirmationSummary = await deps.store.groupConfirmations(
      group,
      options.windowMs ?? 900_000,
      options.unconfirmedAfterMs ?? 60_000,
    );
    const oldest = s.oldestUnconfirmed;
    out.push({
      group,
      topics: s.topics,
      lastReceiptAt: s.lastReceiptAt?.toISOString() ?? null,
      sent: s.sent,
      confirmed: s.confirmed,
      unconfirmed: s.sent - s.confirmed,
      oldestUnconfirmed: oldest
        ? {
            messageId: oldest.messageId,
            topic: oldest.topic,
            createdAt: oldest.createdAt.toISOString(),
            sentAt: oldest.sentAt.toISOString(),
            ageMs: Math.max(0, now - oldest.sentAt.getTime()),
          }
        : undefined,
    });
  }
  return out;
}
