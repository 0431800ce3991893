import { HEADER, readEnvelope } from '../../core/envelope.ts';
import { ZerolossError } from '../../core/errors.ts';
import type { Stage } from '../chain.ts';
import { type DecodedDelivery, type Delivery, setDecoded } from '../delivery.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Turns the record into an envelope and a payload, or throws a permanent error naming what is wrong
 * (N3): oversized or missing value, missing or malformed envelope headers, bytes that are not UTF-8,
 * text that is not JSON, an unknown content type. Nothing here is worth retrying.
 */
export function decodeStage(options: { maxPayloadBytes: number }): Stage<Delivery, DecodedDelivery> {
  return async (d, next) => {
    const { record } = d;
    const value = record.value;
    if (value === null || value === undefined || value.length === 0) {
      throw new ZerolossError('ZL_INVALID_PAYLOAD', 'record value is null or empty: every message carries a payload');
    }
    if (value.length > options.maxPayloadBytes) {
      throw new ZerolossError('ZL_PAYLOAD_TOO_LARGE', `payload is ${value.length} bytes, over the limit of ${options.maxPayloadBytes}`, {
        details: { bytes: value.length, limit: options.maxPayloadBytes },
      });
    }
    const envelope = readEnvelope(record.key, record.headers);
    let payload: unknown;
    const contentType = record.headers[HEADER.contentType] ?? 'application/json';
    if (contentType === 'application/octet-stream') {
      payload = value;
    } else if (contentType === 'application/json') {
      let text: string;
      try {
        text = utf8.decode(value);
      } catch {
        throw new ZerolossError('ZL_INVALID_PAYLOAD', 'payload is not valid UTF-8');
      }
      try {
        payload = JSON.parse(text);
      } catch (cause) {
        throw new ZerolossError('ZL_INVALID_PAYLOAD', `payload is not valid JSON: ${(cause as Error).message}`, { cause });
      }
    } else {
      throw new ZerolossError('ZL_INVALID_PAYLOAD', `unsupported content type ${JSON.stringify(contentType.slice(0, 100))}`);
    }
    setDecoded(d, { envelope, payload });
    await next(d);
  };
}
