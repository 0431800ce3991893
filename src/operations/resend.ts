import { errorSummary } from '../core/errors.ts';
import type { ResendSelector, ResendStore } from '../ports/operations-store.ts';
import type { Publisher } from '../ports/transport.ts';
import type { OpsMetrics } from './ops-metrics.ts';

export interface ResendOptions {
  /** Who asked (recorded in the transition and the audit). */
  actor: string;
  /** Why (recorded in the audit), e.g. "broker retention deleted 10:00-10:15". */
  reason: string;
  /** Rows read and published per round. */
  batchSize?: number;
  /** Only count what would be resent. */
  dryRun?: boolean;
  /** Label of the resend metric: 'manual' (resend command) or 'reconcile' (repair). */
  metricReason?: string;
}

export interface ResendResult {
  /** Rows matching the selector. */
  selected: number;
  resent: string[];
  /** Rows not resent on purpose (not sent yet: the relay owns them; parked: a person must release them). */
  skipped: Array<{ messageId: string; reason: string }>;
  failed: Array<{ messageId: string; error: string }>;
  /** Ids asked for that have no outbox row (cleaned up, discarded, or never committed). */
  notFound: string[];
}

/**
 * Re-publishes sent messages from the outbox, byte for byte (O5): after the broker lost them (retention,
 * a full disk, deleted records) or when reconciliation finds them missing. Rows are sent in commit order,
 * so a key's resent messages keep their order; the new position is recorded on the row with a 1→1
 * transition and an audit row. Safe to repeat: consumers apply each message once through their inbox, so
 * a resend of something they already applied is a duplicate they skip. Rows not sent yet are left to the
 * relay, which is what sends them.
 */
export async function resend(
  deps: { store: ResendStore; publisher: Publisher; metrics?: OpsMetrics },
  selector: ResendSelector,
  options: ResendOptions,
): Promise<ResendResult> {
  const batchSize = options.batchSize ?? 500;
  const result: ResendResult = { selected: 0, resent: [], skipped: [], failed: [], notFound: [] };
  const seen = new Set<string>();
  let after = '0';
  for (;;) {
    const rows = await deps.store.resendRows(selector, after, batchSize);
    if (rows.length === 0) break;
    after = rows[rows.length - 1]?.seqId ?? after;
    result.selected += rows.length;
    for (const r of rows) seen.add(r.messageId);
    const sendable = rows.filter((r) => {
      if (r.state === 1) return true;
      result.skipped.push({
        messageId: r.messageId,
        // A parked row is not the relay's until a person releases it: "the relay sends it" would be untrue.
        reason:
          r.state === 3
            ? 'parked: nothing sends it until a person releases it (zeroloss parked release)'
            : 'not sent yet: the relay sends it',
      });
      return false;
    });
    if (options.dryRun || sendable.length === 0) {
      if (options.dryRun) result.resent.push(...sendable.map((r) => r.messageId));
      continue;
    }
    let outcomes: Awaited<ReturnType<Publisher['publish']>>;
    try {
      outcomes = await deps.publisher.publish(sendable.map((r) => ({ topic: r.topic, key: r.key, value: r.payload, headers: r.headers })));
    } catch (error) {
      outcomes = sendable.map(() => ({ ok: false, error: error as never, attempted: true }));
    }
    const acked: Array<{ messageId: string; partition: number | null; offset: bigint | null }> = [];
    sendable.forEach((row, i) => {
      const o = outcomes[i];
      if (o?.ok) acked.push({ messageId: row.messageId, partition: o.partition ?? null, offset: o.offset ?? null });
      else if (o && !o.attempted)
        result.failed.push({ messageId: row.messageId, error: 'held back: an earlier message of its key failed' });
      else result.failed.push({ messageId: row.messageId, error: errorSummary(o?.error) });
    });
    const recorded = await deps.store.recordResent(acked, options.actor, options.reason);
    result.resent.push(...recorded);
    // On the broker again, but not recorded: its row went (retention, discard) between its read and now.
    const kept = new Set(recorded);
    for (const a of acked)
      if (!kept.has(a.messageId))
        result.failed.push({
          messageId: a.messageId,
          error: 're-published, but its outbox row was gone (retention or discard) when its new position was to be recorded',
        });
    deps.metrics?.resent.inc({ reason: options.metricReason ?? 'manual' }, recorded.length);
  }
  if ('ids' in selector) result.notFound = selector.ids.filter((id) => !seen.has(id));
  return result;
}

/**
 * `resend` over the outbox and then each state-column source (ResendStore each): the same selector, the
 * results merged. An id is not found only when no store holds it.
 */
export async function resendEverywhere(
  deps: { stores: readonly ResendStore[]; publisher: Publisher; metrics?: OpsMetrics },
  selector: ResendSelector,
  options: ResendOptions,
): Promise<ResendResult> {
  const merged: ResendResult = { selected: 0, resent: [], skipped: [], failed: [], notFound: [] };
  let notFound: string[] | undefined;
  for (const store of deps.stores) {
    const r = await resend({ store, publisher: deps.publisher, metrics: deps.metrics }, selector, options);
    merged.selected += r.selected;
    merged.resent.push(...r.resent);
    merged.skipped.push(...r.skipped);
    merged.failed.push(...r.failed);
    notFound = notFound === undefined ? r.notFound : notFound.filter((id) => r.notFound.includes(id));
  }
  merged.notFound = notFound ?? [];
  return merged;
}
