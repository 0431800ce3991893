import type { Outbox } from '../src/outbox/outbox.ts';

/**
 * The ids one producer's outbox handed out, in the order it drew them. `enqueue` draws the id before its
 * first await, so the order of the calls is the order of the draws; an enqueue that failed leaves its
 * place empty (its id never reached the caller).
 */
export interface IdLog {
  producerId: string;
  ids: Array<string | undefined>;
}

/** `outbox` with every id it draws written to the returned log, in draw order. */
export function loggingIds(outbox: Outbox): { outbox: Outbox; log: IdLog } {
  const log: IdLog = { producerId: outbox.config.producerId, ids: [] };
  return {
    log,
    outbox: {
      config: outbox.config,
      whenSent: (id, options) => outbox.whenSent(id, options),
      async enqueue(tx, message) {
        const place = log.ids.length;
        log.ids.push(undefined);
        const envelope = await outbox.enqueue(tx, message);
        log.ids[place] = envelope.id;
        return envelope;
      },
    },
  };
}

/**
 * Counts, per producer, ids not above every id it drew before (an id sent back in time), and ids drawn twice.
 * What zeroloss promises of its ids (src/core/ids.ts): unique, and strictly increasing per generator
 * whatever the clock does, so a producer's ids sort in the order it drew them. UUIDv7 text compares in
 * the order of its bytes (fixed-length lowercase hex); Snowflake ids are decimal, compared as numbers.
 */
export function idChecks(logs: IdLog[]): { idsChecked: number; duplicateIds: number; idsOutOfOrder: number; samples: string[] } {
  const seen = new Set<string>();
  let duplicateIds = 0;
  let idsOutOfOrder = 0;
  const samples: string[] = [];
  for (const log of logs) {
    // Each id is compared with the highest drawn before it, so every id a step sends back is counted.
    let highest: string | undefined;
    for (const id of log.ids) {
      if (id === undefined) continue;
      if (seen.has(id)) duplicateIds++;
      seen.add(id);
      if (highest !== undefined && !(compareIds(highest, id) < 0)) {
        idsOutOfOrder++;
        if (samples.length < 5) samples.push(`${log.producerId}: ${id} after ${highest}`);
        continue;
      }
      highest = id;
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
