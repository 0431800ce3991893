import { randomBytes } from 'node:crypto';
import { Snowflake, type SnowflakeOptions } from './snowflake.ts';

export type IdGenerator = () => string;

export function snowflakeIds(options: SnowflakeOptions): IdGenerator {
  const generator = new Snowflake(options);
  return () => generator.next();
}

/** UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sortable by time like Snowflake. */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  const ms = BigInt(now);
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A worker id for Snowflake when none is configured: random, so two processes rarely share one. */
export function randomWorkerId(): number {
  return randomBytes(2).readUInt16BE(0) & 0x3ff;
}
