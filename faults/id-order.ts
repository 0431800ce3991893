import type { Outbox } from '../src/outbox/outbox.ts';

/**
 * The ids one producer's outbox handed out, each with the highest id of the enqueues that had returned before
 * it was called. That is the order a caller can observe, and the one zeroloss promises: an enqueue that
 * starts after another returned gets a higher id. Calls that overlap are not ordered by it: a Snowflake
 * enqueue that sits out a backward clock step waits on a timer before it draws, so overlapping calls draw in
 * the order their timers fire, not the order they were made (the generator itself stays strictly
 * increasing in the order it draws). An enqueue that failed has no id (it never reached the caller).
 */
export interface IdLog {
  producerId: string;
  ids: Array<{ id: string | undefined; after: string | undefined }>;
}

/** `outbox` with every id it hands out written to the returned log, with the highest id returned before the call. */
export function loggingIds(outbox: Outbox): { outbox: Outbox; log: IdLog } {
  const log: IdLog = { producerId: outbox.config.producerId, ids: [] };
  let highestReturned: string | undefined;
  return {
    log,
    outbox: {
      config: outbox.config,
      whenSent: (id, options) => outbox.whenSent(id, options),
      async enqueue(tx, message) {
        const entry: IdLog['ids'][number] = { id: undefined, after: highestReturned };
        log.ids.push(entry);
        const envelope = await outbox.enqueue(tx, message);
        entry.id = envelope.id;
        if (highestReturned === undefined || compareIds(highestReturned, envelope.id) < 0) highestReturned = envelope.id;
        return envelope;
      },
    },
  };
}

/**
 * Counts, per producer, ids not above the highest id returned before their enqueue was called (an id sent
 * back in time), and ids handed out twice. What zeroloss promises of its ids (src/core/ids.ts): unique, and
 * strictly increasing per generator whatever the clock does. UUIDv7 text compares in the order of its bytes
 * (fixed-length lowercase hex); Snowflake ids are decimal, compared as numbers.
 */
export function idChecks(logs: IdLog[]): { idsChecked: number; duplicateIds: number; idsOutOfOrder: number; samples: string[] } {
  const seen = new Set<string>();
  let duplicateIds = 0;
  let idsOutOfOrder = 0;
  const samples: string[] = [];
  for (const log of logs) {
    for (const { id, after } of log.ids) {
      if (id === undefined) continue;
      if (seen.has(id)) duplicateIds++;
      seen.add(id);
      if (after !== undefined && !(compareIds(after, id) < 0)) {
        idsOutOfOrder++;
        if (samples.length < 5) samples.push(`${log.producerId}: ${id} after ${after}`);
      }
    }
  }
  return { idsChecked: seen.size + duplicateIds, duplicateIds, idsOutOfOrder, samples };
}

function compareIds(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const d = BigInt(a) - BigInt(b);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}
