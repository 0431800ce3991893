/**
 * Which WAL shard a message key belongs to (docs/wal-relay.md, Shards). The relay never computes this to
 * route rows: each shard's publication filters the outbox by `walShardExpression` inside PostgreSQL. The
 * same function in JavaScript lets tests and tools say where a key goes, and pins the mapping: a key that
 * changed shard would have its rows streamed by two slots, in no order relative to each other.
 *
 * The hash is PostgreSQL's `hashtext` (its `hash_bytes`, Bob Jenkins' lookup3, over the key's UTF-8
 * bytes; keys use a deterministic collation). It is allowed in a publication's row filter (a built-in
 * immutable function) and it cannot change between PostgreSQL versions: hash-partitioned tables store
 * rows by the same function (`hashtextextended` with seed 0, whose low 32 bits must equal `hashtext`),
 * and pg_upgrade keeps their data files as they are. It does depend on the machine's byte order (this
 * port is the little-endian one, every server platform in use): a standby of another byte order is not a
 * supported failover target for this reason alone. `& 2147483647` rather than `abs()`: `abs(-2^31)` is an
 * "integer out of range" error, which inside a row filter would stop the walsender at that row.
 */
export function walShardOf(key: string, shards: number): number {
  return (pgHashText(key) & 0x7fffffff) % shards;
}

/** The row filter of shard `shard` of `shards`; `column` is a validated, quoted identifier. */
export function walShardExpression(column: string, shard: number, shards: number): string {
  if (!Number.isInteger(shards) || shards < 1 || !Number.isInteger(shard) || shard < 0 || shard >= shards) {
    throw new RangeError(`shard ${shard} of ${shards}`);
  }
  return `(hashtext(${column}) & 2147483647) % ${shards} = ${shard}`;
}

/** PostgreSQL's `hashtext(key)` as a signed 32-bit integer (src/common/hashfn.c, little-endian). */
export function pgHashText(key: string): number {
  const k = Buffer.from(key, 'utf8');
  let len = k.length;
  let a = (0x9e3779b9 + len + 3923095) >>> 0;
  let b = a;
  let c = a;
  let i = 0;
  const word = (at: number) =>
    (k[at] as number) | ((k[at + 1] as number) << 8) | ((k[at + 2] as number) << 16) | ((k[at + 3] as number) << 24);
  while (len >= 12) {
    a = (a + word(i)) | 0;
    b = (b + word(i + 4)) | 0;
    c = (c + word(i + 8)) | 0;
    [a, b, c] = mix(a, b, c);
    i += 12;
    len -= 12;
  }
  // The last 0-11 bytes; the lowest byte of c is left to the length (set in the initial value).
  const byte = (n: number) => k[i + n] as number;
  if (len >= 11) c = (c + (byte(10) << 24)) | 0;
  if (len >= 10) c = (c + (byte(9) << 16)) | 0;
  if (len >= 9) c = (c + (byte(8) << 8)) | 0;
  if (len >= 8) b = (b + (byte(7) << 24)) | 0;
  if (len >= 7) b = (b + (byte(6) << 16)) | 0;
  if (len >= 6) b = (b + (byte(5) << 8)) | 0;
  if (len >= 5) b = (b + byte(4)) | 0;
  if (len >= 4) a = (a + (byte(3) << 24)) | 0;
  if (len >= 3) a = (a + (byte(2) << 16)) | 0;
  if (len >= 2) a = (a + (byte(1) << 8)) | 0;
  if (len >= 1) a = (a + byte(0)) | 0;
  return final(a, b, c);
}

const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));

function mix(a: number, b: number, c: number): [number, number, number] {
  a = (a - c) | 0;
  a ^= rot(c, 4);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rot(a, 6);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rot(b, 8);
  b = (b + a) | 0;
  a = (a - c) | 0;
  a ^= rot(c, 16);
  c = (c + b) | 0;
  b = (b - a) | 0;
  b ^= rot(a, 19);
  a = (a + c) | 0;
  c = (c - b) | 0;
  c ^= rot(b, 4);
  b = (b + a) | 0;
  return [a, b, c];
}

function final(a: number, b: number, c: number): number {
  c ^= b;
  c = (c - rot(b, 14)) | 0;
  a ^= c;
  a = (a - rot(c, 11)) | 0;
  b ^= a;
  b = (b - rot(a, 25)) | 0;
  c ^= b;
  c = (c - rot(b, 16)) | 0;
  a ^= c;
  a = (a - rot(c, 4)) | 0;
  b ^= a;
  b = (b - rot(a, 14)) | 0;
  c ^= b;
  c = (c - rot(b, 24)) | 0;
  return c | 0;
}
