import { errorSummary, ZerolossError } from '../core/errors.ts';
import type { DeadLetterFilter, DeadLetterQueue } from '../ports/dead-letter-store.ts';
import type { Publisher } from '../ports/transport.ts';

/** Header a replayed copy carries: the dead letter it came from. */
export const REPLAY_HEADER = 'zl-replay-of';

export interface ReplayResult {
  id: string;
  ok: boolean;
  error?: string;
}

/**
 * Sends dead letters back to their original topic, byte for byte with their original headers (plus
 * `zl-replay-of`). The consumers' inboxes make this safe to repeat: a message whose effect was applied
 * is skipped, so replaying twice applies nothing twice. A row is marked replayed only once the broker
 * acknowledged the copy.
 */
export async function replayDeadLetters(
  queue: DeadLetterQueue,
  publisher: Publisher,
  ids: string[],
  actor: string,
  /** `skipDiscarded`: ids listed as open (`--all`, the dashboard): one a person discarded since is not sent. */
  options: { skipDiscarded?: boolean } = {},
): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for (const id of ids) {
    try {
      const found = await queue.replay(
        id,
        actor,
        async (record, tx) => {
          const copy = [{ ...record, headers: { ...record.headers, [REPLAY_HEADER]: id } }];
          // A log in the dead letters' own database takes the copy in the transaction that holds the row:
          // the copy and the replayed mark commit together, and a single-connection database (PGlite)
          // is not asked for a second transaction while this one waits on it.
          const within = publisher.publishWithin !== undefined && publisher.database !== undefined && publisher.database === queue.database;
          const [outcome] = within ? await publisher.publishWithin!(tx, copy) : await publisher.publish(copy);
          if (!outcome?.ok) throw outcome?.error ?? new ZerolossError('ZL_SEND_FAILED', 'publisher gave no outcome');
        },
        options,
      );
      results.push(found ? { id, ok: true } : { id, ok: false, error: 'no such dead letter' });
    } catch (error) {
      results.push({ id, ok: false, error: errorSummary(error) });
    }
  }
  return results;
}

/** Ids of every dead letter matching `filter`, oldest first, following the pages. */
export async function deadLetterIds(queue: DeadLetterQueue, filter: DeadLetterFilter): Promise<string[]> {
  const ids: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await queue.list({ ...filter, limit: 500, before });
    ids.push(...page.map((d) => d.id));
    if (page.length < 500) return ids.reverse();
    before = page[page.length - 1]?.id;
  }
}
