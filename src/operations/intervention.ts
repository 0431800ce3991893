import { userInfo } from 'node:os';
import { ZerolossError } from '../core/errors.ts';
import { type ReplayResult, replayDeadLetters } from '../consumer/dead-letters.ts';
import type { DeadLetterQueue, DeadLetterSummary } from '../ports/dead-letter-store.ts';
import type { InterventionStore, OutboxRowView } from '../ports/operations-store.ts';
import type { ParkedSource, SourceRowView } from '../ports/parked-source.ts';
import type { Publisher } from '../ports/transport.ts';

/**
 * Manual intervention (O7): what keeps failing is listed with its reason — parked outbox rows (the relay
 * gave up) and open dead letters (a consumer gave up) — and a person releases, replays or discards it.
 * Every action leaves an audit row saying who, when and why.
 */

export interface Actor {
  /** Who acts; defaults to the OS user. */
  actor?: string;
  /** Why; required to discard. */
  reason?: string;
}

export interface StuckWork {
  parked: OutboxRowView[];
  /** Parked rows of the state-column sources given (business tables with their own send state). */
  sourceRows: SourceRowView[];
  deadLetters: DeadLetterSummary[];
}

export async function listStuckWork(
  deps: { store: InterventionStore; deadLetters?: DeadLetterQueue; sources?: readonly ParkedSource[] },
  options: { limit?: number; topic?: string } = {},
): Promise<StuckWork> {
  const limit = options.limit ?? 50;
  const [parked, deadLetters, sourceRows] = await Promise.all([
    deps.store.parkedRows(limit, options.topic),
    deps.deadLetters ? deps.deadLetters.list({ status: 'dead', topic: options.topic, limit }) : Promise.resolve([]),
    Promise.all((deps.sources ?? []).map((s) => s.parkedRows(limit))).then((all) => all.flat()),
  ]);
  return { parked, sourceRows, deadLetters };
}

/**
 * Parked rows back to pending with attempts reset to 0, so the relay sends them again with a full set of
 * attempts; relays are woken at once. An id not parked in the outbox is looked for in each source in turn
 * (message ids, or `<source>:<row id>`). Returns what was released and the ids that were not parked.
 */
export async function releaseParked(
  store: InterventionStore,
  ids: string[],
  who: Actor = {},
  sources: readonly ParkedSource[] = [],
): Promise<{ released: string[]; notParked: string[] }> {
  const actor = actorOf(who);
  const released = await store.release(ids, actor, who.reason);
  if (released.length > 0) await store.wakeRelays();
  for (const source of sources) {
    const left = ids.filter((id) => !released.includes(id));
    if (left.length > 0) released.push(...(await source.release(left, actor, who.reason)));
  }
  return { released, notParked: ids.filter((id) => !released.includes(id)) };
}

/**
 * Removes parked rows from the outbox for good (a discarded row no longer holds its key's later messages
 * back). The row's whole content, payload included, stays in the audit row. A reason is required. A
 * source's parked row is given up without touching the business row (see ParkedSource.discard).
 */
export async function discardParked(
  store: InterventionStore,
  ids: string[],
  who: Actor,
  sources: readonly ParkedSource[] = [],
): Promise<{ discarded: string[]; notParked: string[] }> {
  const reason = requireReason(who);
  const actor = actorOf(who);
  const discarded = await store.discard(ids, actor, reason);
  for (const source of sources) {
    const left = ids.filter((id) => !discarded.includes(id));
    if (left.length > 0) discarded.push(...(await source.discard(left, actor, reason)));
  }
  return { discarded, notParked: ids.filter((id) => !discarded.includes(id)) };
}

/** Replays dead letters to their topic (consumers dedup through their inbox) and audits each. */
export async function replayDeadLettersAudited(
  deps: { store: InterventionStore; deadLetters: DeadLetterQueue; publisher: Publisher },
  ids: string[],
  who: Actor = {},
  options: { skipDiscarded?: boolean } = {},
): Promise<ReplayResult[]> {
  const actor = actorOf(who);
  const results = await replayDeadLetters(deps.deadLetters, deps.publisher, ids, actor, options);
  for (const r of results.filter((x) => x.ok)) {
    const d = await deps.deadLetters.get(r.id);
    await deps.store.audit({
      actor,
      action: 'dead-letter.replay',
      subject: `dead_letter:${r.id}`,
      messageId: d?.messageId ?? undefined,
      reason: who.reason,
    });
  }
  return results;
}

/** Marks dead letters handled without replaying them, with the reason in the audit. */
export async function discardDeadLettersAudited(
  deps: { store: InterventionStore; deadLetters: DeadLetterQueue },
  ids: string[],
  who: Actor,
): Promise<Array<{ id: string; ok: boolean; error?: string }>> {
  const reason = requireReason(who);
  const actor = actorOf(who);
  const results: Array<{ id: string; ok: boolean; error?: string }> = [];
  for (const id of ids) {
    const d = await deps.deadLetters.get(id);
    const ok = await deps.deadLetters.discard(id, actor);
    if (ok)
      await deps.store.audit({
        actor,
        action: 'dead-letter.discard',
        subject: `dead_letter:${id}`,
        messageId: d?.messageId ?? undefined,
        reason,
      });
    results.push(ok ? { id, ok } : { id, ok, error: 'no open dead letter with this id' });
  }
  return results;
}

export function actorOf(who: Actor): string {
  if (who.actor) return who.actor;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

function requireReason(who: Actor): string {
  if (!who.reason || who.reason.trim() === '') throw new ZerolossError('ZL_INVALID_CONFIG', 'a reason is required to discard (--reason)');
  return who.reason;
}
