import type { MessageState } from '../ports/outbox-store.ts';
import type { OutboxRowView, ReconcileStore } from '../ports/operations-store.ts';
import { BadInput } from './dashboard-input.ts';

export interface OutboxListing {
  rows: OutboxRowView[];
  /** Cursor of the next page, when there may be one. */
  next: string | undefined;
  scanned: number;
  cut: boolean;
}

const BATCH = 500;
const MAX_SCANNED = 5_000;

/**
 * Outbox rows of a window in commit order, through reconciliation's window read (the one indexed read of
 * the outbox by time), with state and key matched on the rows read: at most 5,000 rows are read per page,
 * so a rare state in a wide window may need Next or a narrower window. The cursor is the last row's
 * (created_at, seq_id); created_at comes back at millisecond precision, so rows of that same millisecond
 * can show again on the next page (never fewer rows, sometimes one twice).
 */
export async function listOutbox(
  store: Pick<ReconcileStore, 'outboxWindow'>,
  filter: { window: { from: Date; to: Date }; topic?: string; state?: MessageState; key?: string; after?: string; limit: number },
): Promise<OutboxListing> {
  let after = filter.after === undefined ? undefined : parseCursor(filter.after);
  const rows: OutboxRowView[] = [];
  const seen = new Set<string>();
  let scanned = 0;
  for (;;) {
    const batch = await store.outboxWindow(filter.window, filter.topic ? [filter.topic] : undefined, after, BATCH);
    scanned += batch.length;
    let fresh = 0;
    for (const r of batch) {
      if (seen.has(r.seqId)) continue;
      seen.add(r.seqId);
      fresh++;
      if (filter.state !== undefined && r.state !== filter.state) continue;
      if (filter.key !== undefined && r.key !== filter.key) continue;
      rows.push(r);
      if (rows.length === filter.limit) return { rows, next: cursorOf(r), scanned, cut: false };
    }
    const last = batch[batch.length - 1];
    if (batch.length < BATCH || !last) return { rows, next: undefined, scanned, cut: false };
    // A whole batch of one millisecond already seen: the cursor cannot move on; say so instead of looping.
    if (fresh === 0 || scanned >= MAX_SCANNED) return { rows, next: cursorOf(last), scanned, cut: true };
    after = { createdAt: last.createdAt, seqId: last.seqId };
  }
}

function cursorOf(r: OutboxRowView): string {
  return `${r.createdAt.getTime()}.${r.seqId}`;
}

function parseCursor(text: string): { createdAt: Date; seqId: string } {
  const m = /^([0-9]{1,15})\.([1-9][0-9]{0,17})$/.exec(text);
  if (!m) throw new BadInput('after', 'not a page cursor');
  return { createdAt: new Date(Number(m[1])), seqId: m[2] as string };
}
