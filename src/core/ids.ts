import { randomBytes, randomFillSync } from 'node:crypto';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { ZerolossError } from './errors.ts';
import { Snowflake, type SnowflakeOptions } from './snowflake.ts';

/**
 * Mints one id. `pendingWaitMs`, where present, says how long the next id would make the caller wait (a
 * Snowflake generator sitting out a backward clock step): an async caller waits that long off the event loop.
 */
export type IdGenerator = (() => string) & { pendingWaitMs?: () => number };

export function snowflakeIds(options: SnowflakeOptions): IdGenerator {
  const generator = new Snowflake(options);
  return Object.assign(() => generator.next(), { pendingWaitMs: () => generator.pendingWaitMs() });
}

const MAX_UNIX_MS = 2 ** 48 - 1;
const COUNTER_MAX = 0xfff;
/** The counter starts each millisecond below half its range (RFC 9562's rollover guard). */
const COUNTER_SEED_MASK = 0x7ff;

/**
 * UUIDv7 ids (RFC 9562): 48 bits of Unix milliseconds, then rand_a as a 12-bit counter (section 6.2,
 * method 1) that starts each millisecond at a random value below 2048, then 62 fresh random bits (rand_b).
 * Uniqueness across processes, services and databases rests on those random bits, not on any
 * coordination (docs/ids.md has the arithmetic).
 *
 * Strictly increasing per generator, whatever the clock does: a reading at or before the last id's
 * millisecond continues that millisecond's counter, and a counter that runs out moves on to the next
 * millisecond. After a backward clock step the ids keep the later time until the clock passes it again.
 */
export function uuidv7Ids(options: { clock?: Clock } = {}): IdGenerator {
  const clock = options.clock ?? systemClock;
  let lastMs = -1;
  let counter = 0;
  return () => {
    const now = Math.floor(clock.now());
    if (!Number.isSafeInteger(now) || now < 0 || now > MAX_UNIX_MS) {
      throw new ZerolossError('ZL_INVALID_CONFIG', `the clock read ${now}, not a Unix time in milliseconds`, { details: { now } });
    }
    if (now > lastMs) {
      lastMs = now;
      counter = randomUint16() & COUNTER_SEED_MASK;
    } else if (counter < COUNTER_MAX) {
      counter += 1;
    } else {
      lastMs += 1;
      counter = randomUint16() & COUNTER_SEED_MASK;
    }
    return format(lastMs, counter);
  };
}

const defaultUuidv7 = uuidv7Ids();

/** A UUIDv7 from the process-wide generator on the system clock. */
export function uuidv7(): string {
  return defaultUuidv7();
}

function format(ms: number, counter: number): string {
  const bytes = Buffer.allocUnsafe(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  takeRandom(bytes, 8, 8);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Random bytes drawn 4 KiB at a time: one call into the CSPRNG per 400-odd ids instead of one per id.
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;

function takeRandom(target: Buffer, offset: number, length: number): void {
  if (poolOffset + length > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  pool.copy(target, offset, poolOffset, poolOffset + length);
  poolOffset += length;
}

function randomUint16(): number {
  const two = Buffer.allocUnsafe(2);
  takeRandom(two, 0, 2);
  return two.readUInt16BE(0);
}

/**
 * A random Snowflake worker id. Two processes share one with a birthday-bound chance (docs/ids.md), so it
 * suits ids that a unique constraint in one database guards (a clash fails the insert), never message ids.
 */
export function randomWorkerId(): number {
  return randomBytes(2).readUInt16BE(0) & 0x3ff;
}
