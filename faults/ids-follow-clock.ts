import { randomBytes } from 'node:crypto';
import type { Clock } from '../src/ports/clock.ts';
import type { Outbox } from '../src/outbox/outbox.ts';

/**
 * TEST-ONLY deliberately broken producer, for `npm run faults -- clock-step --broken ids-follow-clock`:
 * every message gets its id from a UUIDv7 generator that is monotonic only while the clock moves forward
 * (a counter within a millisecond), instead of the outbox's, which carries on from its last id when the
 * clock goes back. After a backward step the ids go back in time with the clock, so the checker must count
 * ids out of order, and only then. The fault lives here, never in src/.
 */
export function idsFollowClock(outbox: Outbox, clock: Clock): Outbox {
  let lastMs = -1;
  let counter = 0;
  const next = () => {
    const now = Math.floor(clock.now());
    counter = now === lastMs ? counter + 1 : 0;
    // The mistake: a reading behind the last one is taken as it is.
    lastMs = now;
    return uuidv7At(now, counter);
  };
  return {
    config: outbox.config,
    whenSent: (id, options) => outbox.whenSent(id, options),
    enqueue: (tx, message) => outbox.enqueue(tx, { ...message, id: next() }),
  };
}

function uuidv7At(ms: number, counter: number): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes.writeUInt16BE(0x7000 | (counter & 0x0fff), 6);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
