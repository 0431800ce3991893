import { createHash } from 'node:crypto';

/** What a message's identity covers: the producer's envelope fields and the payload bytes as sent. */
export interface DigestInput {
  id: string;
  type: string;
  key: string;
  version: number;
  payload: Buffer;
}

/**
 * The content digest stored with an inbox row whose key is the message id: SHA-256 over the message id,
 * type, key, version and payload bytes, each length-prefixed so no two different field sets encode alike.
 * Transport headers (trace ids, retry and replay headers, application headers a proxy may add) are left
 * out on purpose: a retried, replayed or re-traced copy of a message is the same message.
 *
 * Truncated to 128 bits (32 hex characters): the digest is only ever compared with the one row already
 * stored under the same id, so the chance that two different messages under one id go unnoticed is 2^-128
 * per pair, not a birthday bound over all messages; 16 bytes per inbox row instead of 32.
 */
export function contentDigest(input: DigestInput): string {
  const hash = createHash('sha256');
  for (const field of [input.id, input.type, input.key, String(input.version)]) lengthPrefixed(hash, Buffer.from(field, 'utf8'));
  lengthPrefixed(hash, input.payload);
  return hash.digest().subarray(0, 16).toString('hex');
}

function lengthPrefixed(hash: ReturnType<typeof createHash>, bytes: Buffer): void {
  const length = Buffer.alloc(8);
  length.writeBigUInt64BE(BigInt(bytes.length));
  hash.update(length);
  hash.update(bytes);
}
